"""Fleet migration throughput: ``artifact_tools.migrate`` against doing the same by hand, and its scaling.

    python benchmarks/migrate.py [--models 200] [--target mlflow]

The fleet: ``--models`` small ``model.tar.gz`` files, half scikit-learn (joblib), half XGBoost (UBJSON)
(``scripts/make_fleet.py``'s ``build_small``). Each measurement runs in a fresh child process with an empty
extraction cache and counts the whole child (interpreter start, imports, every model):

- by hand (the anchor): for each archive, extract it with ``tarfile``, load the model with the framework
  (``joblib.load`` / ``xgboost.Booster().load_model``) and write an MLflow model with
  ``mlflow.sklearn.save_model`` / ``mlflow.xgboost.save_model`` (MLflow's defaults, except scikit-learn models
  saved with ``serialization_format="cloudpickle"``: MLflow 3's default, skops, refuses tree models unless their
  types are listed as trusted), nothing verified;
- ours: ``migrate(folder, target, out, jobs=N)``: inspect, audit, load, export and verify every model, state file
  and reports. The target is ``--target``, by default ``mlflow`` when that target is registered
  (``exporters.TARGETS``), else ``sagemaker``; the output says which.

Targets (issue 13): our models per minute (``jobs=1``) over by hand >= 1.0; ``jobs=2`` over ``jobs=1`` >= 1.7.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import CACHE  # noqa: E402

BY_HAND = r"""
import sys, tarfile, tempfile, time, os, warnings
from pathlib import Path
warnings.simplefilter("ignore")
import joblib, mlflow, xgboost as xgb
folder, out = Path(sys.argv[1]), Path(sys.argv[2])
done = 0
for archive in sorted(folder.rglob("model.tar.gz")):
    work = Path(tempfile.mkdtemp(dir=out))
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    dest = out / archive.parent.name
    if (work / "model.joblib").exists():
        mlflow.sklearn.save_model(joblib.load(work / "model.joblib"), str(dest),
                                  serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE)
    else:
        booster = xgb.Booster()
        booster.load_model(str(work / "xgboost-model"))
        mlflow.xgboost.save_model(booster, str(dest))
    done += 1
print(done)
"""

OURS = r"""
import json, sys
from artifact_tools.migrate import migrate
r = migrate(sys.argv[1], sys.argv[2], sys.argv[3], jobs=int(sys.argv[4]), resume=False)
print(json.dumps(r["counts"]))
"""


def child(code: str, *args: str, cache: Path) -> tuple[float, str]:
    env = dict(os.environ, ARTIFACT_TOOLS_CACHE=str(cache), MLFLOW_TRACKING_URI=f"file:{cache}/mlruns")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return wall, proc.stdout.strip().splitlines()[-1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=200)
    p.add_argument("--target", default=None, help="export target (default: mlflow when registered, else sagemaker)")
    args = p.parse_args()
    import make_fleet

    import exporters

    target = args.target or ("mlflow" if "mlflow" in exporters.TARGETS else "sagemaker")
    fleet = CACHE / f"migrate-fleet-{args.models}"
    if not (fleet / ".complete").exists():
        shutil.rmtree(fleet, ignore_errors=True)
        print(f"building {args.models} small models in {fleet}", flush=True)
        make_fleet.build_small(fleet, args.models)
        (fleet / ".complete").write_text("")
    n = args.models
    with tempfile.TemporaryDirectory(prefix="bench-migrate-") as tmp:
        tmp = Path(tmp)
        (tmp / "hand").mkdir()
        hand, done = child(BY_HAND, str(fleet), str(tmp / "hand"), cache=tmp / "c0")
        assert int(done) == n, done
        print(f"by hand: {hand:.1f} s for {n} models", flush=True)
        runs = {}
        for jobs in (1, 2):
            wall, counts = child(OURS, str(fleet), target, str(tmp / f"ours{jobs}"), str(jobs), cache=tmp / f"c{jobs}")
            counts = json.loads(counts)
            print(f"migrate jobs={jobs}: {wall:.1f} s ({counts})", flush=True)
            if counts["migrated"] != n:
                print(f"jobs={jobs}: only {counts['migrated']} of {n} models migrated ({counts}); the rates below "
                      "count every model handled", flush=True)
            runs[jobs] = wall
    per_min = {k: 60 * n / v for k, v in runs.items()}
    hand_per_min = 60 * n / hand
    print(f"target: {target}" + ("" if target == "mlflow" else " (not mlflow: the by-hand anchor still writes MLflow "
                                                               "models)"))
    print(f"by hand (extract, framework load, mlflow.<flavor>.save_model): {hand:.1f} s, {hand_per_min:.0f} models/min")
    print(f"migrate jobs=1: {runs[1]:.1f} s, {per_min[1]:.0f} models/min (verified)")
    print(f"migrate jobs=2: {runs[2]:.1f} s, {per_min[2]:.0f} models/min (verified)")
    r1 = per_min[1] / hand_per_min
    r2 = runs[1] / runs[2]
    print(f"ratio ours(jobs=1)/by hand: {r1:.2f} (target >= 1.0) {'OK' if r1 >= 1.0 else 'MISSED'}")
    print(f"ratio ours(jobs=2)/by hand: {per_min[2] / hand_per_min:.2f}")
    print(f"ratio jobs=2/jobs=1: {r2:.2f} (target >= 1.7) {'OK' if r2 >= 1.7 else 'MISSED'} "
          f"(on {os.cpu_count()} CPU(s))")


if __name__ == "__main__":
    main()
