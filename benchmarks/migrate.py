"""Fleet migration throughput: ``artifact_tools.migrate`` against doing the same by hand, and its scaling.

    python benchmarks/migrate.py [--models 200] [--target mlflow] [--rounds 1] [--skip-anchor]

The fleet: ``--models`` small ``model.tar.gz`` files, half scikit-learn (joblib: logistic regressions and decision
trees), half XGBoost (UBJSON) (``scripts/make_fleet.py``'s ``build_small``). Each measurement runs in a fresh
child process with an empty extraction cache and counts the whole child (interpreter start, imports, every
model), all three in the same run (``--rounds N`` repeats the three back to back and keeps each one's best):

- by hand (the anchor): a plain script that, for each archive, extracts it with ``tarfile``, loads the model with
  the framework (``joblib.load`` / ``xgboost.Booster().load_model``) and writes an MLflow model with
  ``mlflow.sklearn.save_model`` / ``mlflow.xgboost.save_model``, with MLflow's defaults (so MLflow infers the
  pip requirements, which it does by loading the saved model in a subprocess) except that scikit-learn models are
  saved with ``serialization_format="cloudpickle"`` (MLflow 3's default, skops, refuses tree models unless their
  types are listed as trusted); nothing is verified;
- ours: ``migrate(folder, target, out, jobs=N)`` for N = 1 and 2: inspect, audit, load, export and verify every
  model (the mlflow target also reloads each with ``mlflow.pyfunc`` and answers its input example through the
  scoring server's ``invocations``), state file and reports.

Targets (issue 13): our models per minute (``jobs=1``) over by hand >= 1.0; ``jobs=2`` over ``jobs=1`` >= 1.7.
``--skip-anchor`` leaves the by-hand run out (it takes minutes) and measures only the scaling; the by-hand ratio
is then reported as not measured.

Wall-clock ratios hold only on an otherwise idle machine, so the CPU time is printed beside them: each run's CPU
seconds (the by-hand child and its subprocesses; ours: the parent plus every worker, from the run records in
``migrate-state.json``) and, for the scaling, the busiest worker's CPU seconds (imports included): on idle cores
the jobs=2 wall time is that worker's time, so jobs=1's busiest worker over jobs=2's is the ratio the wall clock
gives on a quiet machine (a little above it: jobs=1's worker runs two native threads, whose second one's CPU
time overlaps the first's, where each jobs=2 worker runs one). The same records show whether the two jobs overlap:
the mean number of models in flight, and the pairs of models of different workers that ran at the same time.
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import CACHE  # noqa: E402

BY_HAND = r"""
import sys, tarfile, tempfile, warnings
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


def child(code: str, *args: str, cache: Path) -> tuple[float, float, str]:
    """Run ``code`` in a fresh interpreter: (wall seconds, CPU seconds of it and of the children it waited for,
    last line of its output)."""
    env = dict(os.environ, ARTIFACT_TOOLS_CACHE=str(cache), MLFLOW_TRACKING_URI=f"file:{cache}/mlruns")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=out, stderr=err, env=env, cwd=ROOT,
                                text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"child failed ({proc.returncode}): {err.read()[-1500:]}")
        lines = out.read().strip().splitlines()
    return wall, usage.ru_utime + usage.ru_stime, lines[-1] if lines else ""


def _mean(values: list) -> float:
    return sum(values) / len(values) if values else float("nan")


def worker_facts(out: Path) -> dict:
    """From the run records of ``out/migrate-state.json``: workers, CPU seconds per worker (its whole life up to
    its last model, imports included), models in flight on average, and whether models of different workers
    overlapped in time."""
    state = json.loads((out / "migrate-state.json").read_text())
    runs = [e["run"] for e in state["models"].values() if e.get("run")]
    workers: dict = {}
    for r in runs:
        workers.setdefault(r["pid"], []).append(r)
    cpu = {pid: max(r["process_cpu"] for r in rs) for pid, rs in workers.items()}
    span = max(r["ended"] for r in runs) - min(r["started"] for r in runs)
    in_flight = sum(r["ended"] - r["started"] for r in runs) / span if span > 0 else 0.0
    overlap = sum(1 for a in runs for b in runs if a["pid"] < b["pid"] and a["started"] < b["ended"]
                  and b["started"] < a["ended"])
    return {"workers": len(workers), "worker_cpu": sorted(cpu.values(), reverse=True),
            "models_per_worker": sorted((len(v) for v in workers.values()), reverse=True),
            "model_cpu": _mean([r["cpu"] for rs in workers.values()
                                for r in sorted(rs, key=lambda r: r["started"])[1:]]),
            "in_flight": in_flight, "overlapping_pairs": overlap,
            "threads": sorted({r.get("threads") for r in runs}, key=str)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=200)
    p.add_argument("--target", default="mlflow", help="export target of ours (default mlflow)")
    p.add_argument("--rounds", type=int, default=1, help="repeat the three measurements back to back; best of each")
    p.add_argument("--skip-anchor", action="store_true",
                   help="do not run the by-hand anchor (minutes): measure jobs=1 against jobs=2 only")
    args = p.parse_args()
    import make_fleet

    import exporters

    if args.target not in exporters.TARGETS:
        raise SystemExit(f"the {args.target} export target is not registered (exporters.TARGETS: "
                         f"{', '.join(exporters.TARGETS)})")
    target, n = args.target, args.models
    fleet = CACHE / f"migrate-fleet-{n}"
    if not (fleet / ".complete").exists():
        shutil.rmtree(fleet, ignore_errors=True)
        print(f"building {n} small models in {fleet}", flush=True)
        make_fleet.build_small(fleet, n)
        (fleet / ".complete").write_text("")
    load0 = os.getloadavg()
    hand: list = []
    ours: dict = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="bench-migrate-") as tmp_name:
        tmp = Path(tmp_name)
        for rnd in range(args.rounds):
            work = tmp / f"r{rnd}"
            (work / "hand").mkdir(parents=True)
            if not args.skip_anchor:
                wall, cpu, done = child(BY_HAND, str(fleet), str(work / "hand"), cache=work / "c0")
                assert int(done) == n, done
                print(f"by hand: {wall:.1f} s wall, {cpu:.1f} s CPU for {n} models", flush=True)
                hand.append((wall, cpu))
            for jobs in (1, 2):
                out = work / f"ours{jobs}"
                wall, cpu, counts_line = child(OURS, str(fleet), target, str(out), str(jobs),
                                                      cache=work / f"c{jobs}")
                counts = json.loads(counts_line)
                facts = worker_facts(out)
                total_cpu = cpu + sum(facts["worker_cpu"])
                print(f"migrate jobs={jobs}: {wall:.1f} s wall, {total_cpu:.1f} s CPU (parent {cpu:.1f}, workers "
                      f"{' + '.join(f'{c:.1f}' for c in facts['worker_cpu'])}; models per worker "
                      f"{facts['models_per_worker']}, {facts['model_cpu']:.3f} s CPU per model after each worker's "
                      f"first, native threads {facts['threads']}, {facts['in_flight']:.2f} models in flight on "
                      f"average, {facts['overlapping_pairs']} overlapping pairs across workers) {counts}", flush=True)
                if counts["migrated"] != n:
                    print(f"jobs={jobs}: only {counts['migrated']} of {n} models migrated ({counts}); the rates "
                          "below count every model handled", flush=True)
                ours[jobs].append((wall, total_cpu, facts))
            shutil.rmtree(work, ignore_errors=True)
    load1 = os.getloadavg()
    best_wall = {j: min(r[0] for r in ours[j]) for j in ours}
    best_cpu = {j: min(r[1] for r in ours[j]) for j in ours}
    busiest = {j: min(r[2]["worker_cpu"][0] for r in ours[j]) for j in ours}
    in_flight = max(r[2]["in_flight"] for r in ours[2])
    per_min = {j: 60 * n / best_wall[j] for j in best_wall}
    print()
    print(f"{n} models ({sum(1 for _ in fleet.rglob('model.tar.gz'))} archives: scikit-learn and XGBoost), target "
          f"{target}, {os.cpu_count()} CPU(s), load average {load0[0]:.1f} before, {load1[0]:.1f} after"
          + ("" if max(load0[0], load1[0]) < 1.5 else " (a busy machine: judge by the CPU lines)"))
    if hand:
        hand_wall, hand_cpu = min(h[0] for h in hand), min(h[1] for h in hand)
        hand_per_min = 60 * n / hand_wall
        print(f"by hand (tarfile, framework load, mlflow.<flavor>.save_model): {hand_wall:.1f} s, {hand_per_min:.0f} "
              f"models/min, {hand_cpu:.1f} s CPU")
    for j in (1, 2):
        print(f"migrate jobs={j}: {best_wall[j]:.1f} s, {per_min[j]:.0f} models/min (verified), "
              f"{best_cpu[j]:.1f} s CPU, busiest worker {busiest[j]:.1f} s CPU")
    if hand:
        r1 = per_min[1] / hand_per_min
        print(f"ratio ours(jobs=1)/by hand, models per minute: {r1:.2f} (target >= 1.0) "
              f"{'OK' if r1 >= 1.0 else 'MISSED'}; by CPU seconds: {hand_cpu / best_cpu[1]:.2f}")
    else:
        print("ratio ours(jobs=1)/by hand: not measured (--skip-anchor)")
    r2 = best_wall[1] / best_wall[2]
    print(f"ratio jobs=2/jobs=1, wall: {r2:.2f} (target >= 1.7) {'OK' if r2 >= 1.7 else 'MISSED'}")
    rc = busiest[1] / busiest[2]
    print(f"ratio jobs=2/jobs=1 by CPU (busiest worker jobs=1 / jobs=2, the wall ratio on idle cores): {rc:.2f} "
          f"(target >= 1.7) {'OK' if rc >= 1.7 else 'MISSED'}; CPU per model (after each worker's first) jobs=2/jobs=1 "
          f"{ours[2][0][2]['model_cpu'] / ours[1][0][2]['model_cpu']:.2f}; {in_flight:.2f} models in flight with "
          "jobs=2")


if __name__ == "__main__":
    main()
