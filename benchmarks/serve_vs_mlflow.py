"""``artifact-tools serve`` against MLflow's scoring server on the same models, payloads and worker count.

    python benchmarks/serve_vs_mlflow.py [--requests N] [--workers W] [--endpoint]

Anchor: ``mlflow models serve --env-manager local`` (MLflow 3.x) serving the same trained model saved with MLflow's
own flavor (``mlflow.sklearn`` / ``mlflow.xgboost``), started with the same number of workers, measured in the same
run. Models: a scikit-learn random forest and an XGBoost booster trained here on generated data. Payloads: 1 row and
100 rows, as ``{"inputs": [[...], ...]}`` (a form both servers read). A bounded load generator on 127.0.0.1:
``concurrency`` threads, each with one kept-alive connection, ``N`` requests per point in all. Printed per point:
requests/s, p50 and p99 latency for both, their throughput ratio, and for ours the compute ceiling (the model's own
``predict`` rate on the same rows in one process, times the number of workers, capped at the usable cores).
``--endpoint`` serves ours as a one-variant endpoint (``--variant``: routing, metrics) instead of the plain server.
Targets (issue 14): never slower than MLflow; >= 3x MLflow for 1-row requests at concurrency 16.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import make_samples  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, path: str, proc: subprocess.Popen, log: Path, limit: float = 180) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"server on {port} not ready in {limit} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def load(port: int, body: bytes, total: int, concurrency: int) -> tuple[float, float, float]:
    """(requests/s, p50 s, p99 s) of ``total`` POST /invocations from ``concurrency`` kept-alive clients."""
    per = [total // concurrency + (1 if i < total % concurrency else 0) for i in range(concurrency)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        mine = []
        for _ in range(n):
            t = time.perf_counter()
            conn.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            mine.append(time.perf_counter() - t)
            if resp.status != 200:
                errors.append(f"{resp.status} {data[:200]!r}")
                break
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in per]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        raise SystemExit(f"requests failed: {errors[:3]}")
    lat = np.array(latencies)
    return len(lat) / wall, float(np.percentile(lat, 50)), float(np.percentile(lat, 99))


def build(folder: Path) -> dict:
    """name -> (our artifact, MLflow model folder, predict function on rows)."""
    import joblib
    import mlflow.sklearn
    import mlflow.xgboost
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_samples.make_data(n=2000, d=8)
    forest = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(X, y)
    (folder / "forest").mkdir()
    joblib.dump(forest, folder / "forest" / "model.joblib")
    forest_art = make_samples.tar_folder(folder / "forest", folder / "forest.tar.gz")
    mlflow.sklearn.save_model(forest, str(folder / "forest-mlflow"), skops_trusted_types=["sklearn.tree._tree.Tree"])
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 6}, xgb.DMatrix(X, label=y), 100)
    (folder / "boost").mkdir()
    (folder / "boost" / "xgboost-model").write_bytes(bytes(booster.save_raw("ubj")))
    boost_art = make_samples.tar_folder(folder / "boost", folder / "xgboost.tar.gz")
    mlflow.xgboost.save_model(booster, str(folder / "xgboost-mlflow"))
    return {"scikit-learn forest": (forest_art, folder / "forest-mlflow", forest.predict),
            "XGBoost": (boost_art, folder / "xgboost-mlflow", lambda r: booster.predict(xgb.DMatrix(r)))}


def ceiling(predict, rows: np.ndarray, workers: int) -> float:
    predict(rows)
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < 1.0:
        predict(rows)
        n += 1
    cores = len(os.sched_getaffinity(0))
    return n / (time.perf_counter() - started) * min(workers, cores)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2000, help="requests per point (default 2000)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--endpoint", action="store_true", help="serve ours as a one-variant endpoint")
    args = p.parse_args()
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = build(folder)
        env = {**os.environ, "ARTIFACT_TOOLS_CACHE": str(folder / "cache"),  # MLflow starts uvicorn by name
               "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
        print(f"{'model, rows, concurrency':38} {'ours req/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'ceiling':>8}   "
              f"{'MLflow req/s':>12} {'p50 ms':>7} {'p99 ms':>7}   ratio")
        for name, (artifact, mlflow_dir, predict) in models.items():
            port_ours, port_mlflow = free_port(), free_port()
            what = ["--variant", f"AllTraffic={artifact}"] if args.endpoint else [str(artifact)]
            ours = subprocess.Popen([sys.executable, "-m", "artifact_tools", "serve", *what, "--port", str(port_ours),
                                     "--workers", str(args.workers)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                    stderr=open(folder / "ours.log", "wb"), start_new_session=True)
            theirs = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", str(mlflow_dir),
                                       "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port_mlflow),
                                       "-w", str(args.workers)], env=env, stdout=subprocess.DEVNULL,
                                      stderr=open(folder / "mlflow.log", "wb"), start_new_session=True)
            try:
                wait_ready(port_ours, "/ping", ours, folder / "ours.log")
                wait_ready(port_mlflow, "/ping", theirs, folder / "mlflow.log")
                for n_rows in (1, 100):
                    rows = rng.normal(size=(n_rows, 8)).astype(np.float32)
                    body = json.dumps({"inputs": rows.tolist()}).encode()
                    top = ceiling(predict, rows, args.workers)
                    for concurrency in (1, 16):
                        load(port_ours, body, 50, concurrency)  # warm-up
                        load(port_mlflow, body, 50, concurrency)
                        a = load(port_ours, body, args.requests, concurrency)
                        b = load(port_mlflow, body, args.requests, concurrency)
                        print(f"{name + f', {n_rows} row(s), c={concurrency}':38} {a[0]:10.0f} {a[1] * 1e3:7.1f} "
                              f"{a[2] * 1e3:7.1f} {top:8.0f}   {b[0]:12.0f} {b[1] * 1e3:7.1f} {b[2] * 1e3:7.1f}   "
                              f"{a[0] / b[0]:5.2f}", flush=True)
            finally:
                stop(ours)
                stop(theirs)


if __name__ == "__main__":
    main()
