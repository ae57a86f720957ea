"""``artifact-tools serve`` against MLflow's scoring server and against the model's own compute, in one run.

    python benchmarks/serve.py [--requests N] [--seconds S] [--workers W] [--models forest,xgboost,text]
                               [--cold-runs R] [--quick]

Models (``scripts/make_serving_models.py`` builds them offline in a temporary folder, each saved twice from the
same object: a SageMaker ``model.tar.gz`` for us, MLflow's own flavor for MLflow): a scikit-learn random forest
(``mlflow.sklearn``), an XGBoost booster (``mlflow.xgboost``) and a Hugging Face text classifier -- a
DistilBERT-shaped ``DistilBertForSequenceClassification`` with random weights and a WordPiece tokenizer trained
locally, in the SageMaker Hugging Face layout for us and as the same ``text-classification`` pipeline through
``mlflow.transformers.save_model`` for MLflow (the transformers flavor itself, no pyfunc wrapper: it serves offline
with ``HF_HUB_OFFLINE=1``, set for every process here).

1. **Against MLflow.** ``artifact-tools serve ARTIFACT --workers W`` and ``mlflow models serve --env-manager local
   -w W`` (the anchor; MLflow 3.x) run side by side on 127.0.0.1. Payloads: 1 row and 100 rows (texts for the text
   model) as ``{"inputs": ...}`` JSON, a form both servers read; concurrency 1 and 16. The load generator is one
   thread driving ``concurrency`` kept-alive connections through a selector (pre-built request bytes, a minimal
   response parser), so that it takes little of the CPU the servers share with it; each point sends each server
   ``--requests`` requests, split into three rounds alternating ours and MLflow (AB, BA, AB) after a warm-up on
   the same connections, a round going on with more requests until it has lasted ``MIN_ROUND`` (1 s) and
   stopping at ``--seconds`` / 3 per server (a request under way when the time is up is awaited). Printed:
   requests/s (median of the rounds), p50 and p99 latency (all rounds' requests) for both, ours / MLflow, and,
   since wall-clock figures suffer on a shared machine, each server's CPU time per request (user + system of
   every process of the server's process group, from ``/proc/PID/stat``) and how many of the 16 connections
   each server process held. Every answer must be 200; the first answers of the two servers are compared (same
   predictions). Targets: ours >= MLflow at every point; >= 3x MLflow for 1 row at c=16.
2. **Compute ceiling.** W child processes each load the model with the framework's own API (``joblib.load``;
   ``xgboost.Booster``; transformers ``AutoModelForSequenceClassification``/``AutoTokenizer`` and a
   ``text-classification`` pipeline), decode the same body with ``artifact_tools.codec`` (as the server does)
   and, started together, call the framework's predict on those rows in a loop for a fixed time --
   ``model.predict(rows)``; ``booster.predict(DMatrix(rows))``; ``pipe(texts, truncation=True)``, the calls our
   loaders make. Threads are sized as a server worker sizes them (``artifact_tools._threads.threads_per_worker``:
   ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS`` set, unless already set, to usable cores // W
   before the framework loads, and threadpoolctl's limit in the predicting thread). The ceiling is the sum of the W
   rates, measured before and after each payload's points (their mean). Target: ours at c=16 >= 0.9x ceiling.
3. **Overhead at concurrency 1.** One of those processes alone times single predict calls on the payload (median
   of many; their mean CPU time is printed too); printed: our p50 at c=1 minus that time. Target <= 1 ms (the
   p50 includes the load generator's own client work).
4. **Multi-model.** ``serve --multi-model DIR`` (DIR holds the models' ``.tar.gz`` files; the header
   ``X-Amzn-SageMaker-Target-Model: NAME.tar.gz`` picks one) started with an empty extraction cache; the first
   request to each model (time from sending to the whole answer, on a new connection; one fresh server per
   model, as a worker that loaded another model first may have imported its framework) against a plain load in a
   fresh interpreter with its own empty cache: ``import loaders; loaders.load(path).predict(rows)`` timed after
   the interpreter and numpy have started (the server's worker has both; ``loaders`` it imports on its first
   load). Median of ``--cold-runs`` rounds (server starts and plain loads alternating, the order of the models
   rotated); the server's CPU time during the request and the plain load's are printed too. Target <= 1.1x.
   Then warm requests to each model on one more multi-model server (the warm-up's first request loads it, on the
   same connection) against the same request to the single-model server of the same artifact (1 row, c=1,
   alternating rounds; difference of p50). Target <= 1 ms.

A final table says MET / NOT MET for each target. The machine should be quiet: the load generator, both servers
and the ceiling's processes share its cores (the generator's largest CPU share is printed per model). Default
bounds keep a run under 10 minutes on 2 quiet cores; ``--quick`` is a smoke run (about 4 minutes).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

TITLES = {"forest": "scikit-learn forest", "xgboost": "XGBoost", "text": "Hugging Face text classifier"}
TARGET_MODEL = "X-Amzn-SageMaker-Target-Model"
ROUNDS = 3
MIN_ROUND = 1.0  # seconds a measured round lasts at least (more requests than --requests / ROUNDS if need be)
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


# ================================================================================================ load generator

@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0  # the generator's CPU seconds
    server_cpu: float = 0.0  # the server's CPU seconds (all its processes)
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    def merge(self, other: Result) -> None:
        self.latencies += other.latencies
        self.wall += other.wall
        self.cpu += other.cpu
        self.server_cpu += other.server_cpu
        self.errors += other.errors


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (linear interpolation between closest ranks, numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class _Conn:
    def __init__(self, port: int):
        self.port = port
        self.sock = self._open()
        self.buf = bytearray()
        self.sent = 0.0
        self.retried = False

    def _open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=120)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def reopen(self) -> None:
        self.sock.close()
        self.sock = self._open()
        self.buf.clear()

    def stale(self) -> bool:
        """Whether the server closed this idle connection (e.g. its keep-alive timeout)."""
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        try:
            return bool(sel.select(0))
        finally:
            sel.close()

    def response(self) -> tuple[int, bytes, bool] | None:
        """(status, body, server closes) of a complete response in the buffer, removed from it; else None."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        fields = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip().lower()
        if "chunked" in fields.get("transfer-encoding", ""):
            raise RuntimeError("the load generator reads Content-Length bodies only, not chunked ones")
        length = int(fields.get("content-length", "0"))
        if len(self.buf) < end + 4 + length:
            return None
        body = bytes(self.buf[end + 4:end + 4 + length])
        del self.buf[:end + 4 + length]
        return int(head[0].split()[1]), body, fields.get("connection") == "close"


class Client:
    """Kept-alive connections to one server on 127.0.0.1, all driven from the calling thread through a selector.
    Connections are kept between runs, so a warm-up and the measurement after it use the same ones (and so the same
    server worker processes)."""

    def __init__(self, port: int, body: bytes, headers: dict[str, str] | None = None,
                 meter: Callable[[], float] | None = None):
        self.port = port
        self.meter = meter  # the server's CPU seconds so far
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.request = (f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                        f"Accept: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body
        self.conns: list[_Conn] = []

    def close(self) -> None:
        for c in self.conns:
            c.sock.close()
        self.conns = []

    def run(self, total: int, concurrency: int, seconds: float, min_seconds: float = 0.0) -> Result:
        """Send ``total`` requests over ``concurrency`` connections, one outstanding per connection, and more until
        ``min_seconds`` have passed; no new request after ``seconds``. Returns every request's latency (sending to
        the whole answer)."""
        while len(self.conns) < concurrency:
            self.conns.append(_Conn(self.port))
        conns = self.conns[:concurrency]
        for c in conns:
            if c.stale():
                c.reopen()
        result = Result()
        sel = selectors.DefaultSelector()
        gc.disable()
        server_cpu = self.meter() if self.meter else 0.0
        cpu = time.process_time()
        started = time.perf_counter()
        deadline = started + seconds
        issued = 0

        def send(c: _Conn) -> None:
            c.sent = time.perf_counter()
            c.sock.sendall(self.request)

        try:
            for c in conns:
                if issued < total:
                    sel.register(c.sock, selectors.EVENT_READ, c)
                    send(c)
                    issued += 1
            while sel.get_map():
                events = sel.select(120)
                if not events:
                    raise RuntimeError(f"no answer from 127.0.0.1:{self.port} within 120 s")
                for key, _ in events:
                    c = key.data
                    data = c.sock.recv(1 << 18)
                    if not data:  # closed by the server: a request sent as it closed an idle connection is resent
                        sel.unregister(c.sock)
                        if c.buf or c.retried:
                            result.errors.append("the server closed the connection without an answer")
                            continue
                        c.reopen()
                        c.retried = True
                        sel.register(c.sock, selectors.EVENT_READ, c)
                        send(c)
                        continue
                    c.buf += data
                    answer = c.response()
                    if answer is None:
                        continue
                    now = time.perf_counter()
                    status, body, closing = answer
                    c.retried = False
                    result.latencies.append(now - c.sent)
                    if status != 200:
                        result.errors.append(f"{status} {body[:300]!r}")
                    if closing:
                        sel.unregister(c.sock)
                        c.reopen()
                        sel.register(c.sock, selectors.EVENT_READ, c)
                    if (issued < total or now - started < min_seconds) and now < deadline:
                        send(c)
                        issued += 1
                    else:
                        sel.unregister(c.sock)
        finally:
            result.wall = time.perf_counter() - started
            result.cpu = time.process_time() - cpu
            result.server_cpu = self.meter() - server_cpu if self.meter else math.nan
            gc.enable()
            sel.close()
        return result


def one_request(port: int, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes, float]:
    """(status, body, seconds) of one POST /invocations on a new connection."""
    c = _Conn(port)
    request = Client(port, body, headers).request
    try:
        started = time.perf_counter()
        c.sock.sendall(request)
        while True:
            data = c.sock.recv(1 << 18)
            if not data:
                raise RuntimeError(f"127.0.0.1:{port} closed the connection without an answer")
            c.buf += data
            answer = c.response()
            if answer is not None:
                return answer[0], answer[1], time.perf_counter() - started
    finally:
        c.sock.close()


# ================================================================================================ processes

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process in its own process group (stopped with SIGTERM to that group, SIGKILL after 40 s)."""

    def __init__(self, name: str, cmd: list[str], env: dict, log: Path):
        self.name = name
        self.port = int(cmd[cmd.index("--port" if "--port" in cmd else "-p") + 1])
        self.log = log
        with open(log, "wb") as f:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, limit: float = 300) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with status {self.proc.returncode}:\n"
                                 f"{self.log.read_text(errors='replace')[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"{self.name} on port {self.port} not ready within {limit:.0f} s")

    def cpu(self) -> float:
        """CPU seconds (user + system) of the server's live processes (its process group), from /proc."""
        return group_cpu(self.proc.pid)

    def spread(self) -> str:
        """The established connections per server process, e.g. ``11+5``."""
        return "+".join(map(str, connections_per_process(self.proc.pid, self.port))) or "none"

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass


TICK = os.sysconf("SC_CLK_TCK")


def _group(pgid: int) -> dict[int, float]:
    """pid -> CPU seconds (utime + stime, proc(5)) of the live processes of process group ``pgid``."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields from the state on: state ppid pgrp ... utime(14) stime(15)
            found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICK
    return found


def group_cpu(pgid: int) -> float:
    return sum(_group(pgid).values())


def connections_per_process(pgid: int, port: int) -> list[int]:
    """How many established connections to ``port`` each process of group ``pgid`` holds (most first): the
    server sockets of /proc/net/tcp{,6} (local port ``port``, state 01) matched to the processes' descriptors."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cells = line.split()
            if cells[3] == "01" and int(cells[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{cells[9]}]")
    counts = []
    for pid in _group(pgid):
        try:
            fds = list(os.scandir(f"/proc/{pid}/fd"))
        except OSError:
            continue
        held = 0
        for fd in fds:
            try:
                held += os.readlink(fd.path) in inodes
            except OSError:
                pass
        if held:
            counts.append(held)
    return sorted(counts, reverse=True)


def ours(artifact: Path | None, workers: int, env: dict, log: Path, multi_model: Path | None = None) -> Server:
    what = ["--multi-model", str(multi_model)] if multi_model else [str(artifact)]
    return Server("artifact-tools serve", [sys.executable, "-m", "artifact_tools", "serve", *what, "--port",
                                           str(free_port()), "--workers", str(workers)], env, log)


def mlflow(model: Path, workers: int, env: dict, log: Path) -> Server:
    return Server("mlflow models serve", [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model),
                                          "--env-manager", "local", "-h", "127.0.0.1", "-p", str(free_port()),
                                          "-w", str(workers)], env, log)


def thread_budget(workers: int) -> int:
    """Threads per worker as ``artifact_tools._threads.threads_per_worker`` sizes them."""
    from artifact_tools._threads import threads_per_worker

    return threads_per_worker(workers)


# ================================================================================================ compute ceiling

def _native_predictor(kind: str, folder: Path) -> Any:
    """The framework's own load of the unpacked artifact, and its predict call on decoded rows (the call our
    loader makes)."""
    import numpy as np

    if kind == "forest":
        import joblib

        model = joblib.load(folder / "model.joblib")
        return lambda rows: model.predict(np.asarray(rows))
    if kind == "xgboost":
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray((folder / "xgboost-model").read_bytes()))
        return lambda rows: booster.predict(xgb.DMatrix(np.asarray(rows, dtype=np.float32), missing=np.nan))
    if kind == "text":
        import transformers

        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        net = transformers.AutoModelForSequenceClassification.from_pretrained(str(folder), local_files_only=True)
        pipe = transformers.pipeline("text-classification", model=net, tokenizer=tokenizer, framework="pt")
        return lambda texts: pipe(list(texts), truncation=True)
    raise ValueError(kind)


def child_main(kind: str, folder: str, threads: int) -> None:
    """A ceiling process: commands as JSON lines on stdin, answers as JSON lines on stdout."""
    from threadpoolctl import threadpool_limits

    from artifact_tools import codec

    threadpool_limits(limits=threads)
    predict = _native_predictor(kind, Path(folder))
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    rows: Any = None
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg["cmd"]
        if cmd == "quit":
            return
        if cmd in ("solo", "arm"):
            rows = codec.decode(msg["body"].encode(), codec.JSON).data
            for _ in range(3):
                predict(rows)
        if cmd == "solo":  # single calls, timed one by one
            times: list[float] = []
            end = time.perf_counter() + msg["seconds"]
            cpu = time.process_time()
            while len(times) < msg["calls"] and (len(times) < 20 or time.perf_counter() < end):
                t = time.perf_counter()
                predict(rows)
                times.append(time.perf_counter() - t)
            answer: dict = {"median": statistics.median(times), "cpu": (time.process_time() - cpu) / len(times)}
        elif cmd == "arm":
            answer = {"armed": True}
        elif cmd == "go":  # as many calls as fit in the time
            n, started = 0, time.perf_counter()
            end = started + msg["seconds"]
            while True:
                predict(rows)
                n += 1
                now = time.perf_counter()
                if now >= end:
                    break
            answer = {"rate": n / (now - started)}
        else:
            answer = {"error": cmd}
        out.write(json.dumps(answer) + "\n")
        out.flush()


class Ceiling:
    """W processes predicting with the framework's own API, threads sized as a server worker's."""

    def __init__(self, kind: str, folder: Path, workers: int, env: dict, log: Path):
        threads = thread_budget(workers)
        env = dict(env)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, str(threads))
        self.log = open(log, "wb")
        self.procs = [subprocess.Popen([sys.executable, __file__, "--child", kind, str(folder), str(threads)],
                                       cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=self.log, text=True, start_new_session=True) for _ in range(workers)]
        self.ready = False

    def _ask(self, procs: list, msg: dict) -> list[dict]:
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(json.dumps(msg) + "\n")
            p.stdin.flush()
        return [self._answer(p) for p in procs]

    def _answer(self, p: subprocess.Popen) -> dict:
        assert p.stdout is not None
        line = p.stdout.readline()
        if not line:
            raise SystemExit(f"a ceiling process exited with status {p.wait()}; see {self.log.name}")
        return json.loads(line)

    def wait_ready(self) -> None:
        if not self.ready:
            for p in self.procs:
                self._answer(p)
            self.ready = True

    def single_call(self, body: bytes, seconds: float) -> tuple[float, float]:
        """Median seconds of one predict call, one process working alone, and its mean CPU seconds."""
        self.wait_ready()
        answer = self._ask(self.procs[:1], {"cmd": "solo", "body": body.decode(), "calls": 5000,
                                            "seconds": seconds})[0]
        return answer["median"], answer["cpu"]

    def rate(self, body: bytes, seconds: float) -> float:
        """Predict calls per second of all processes together."""
        self.wait_ready()
        self._ask(self.procs, {"cmd": "arm", "body": body.decode()})
        return sum(a["rate"] for a in self._ask(self.procs, {"cmd": "go", "seconds": seconds}))

    def stop(self) -> None:
        for p in self.procs:
            try:
                assert p.stdin is not None
                p.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                p.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.log.close()


# ================================================================================================ benchmark

def payloads(kind: str) -> dict[int, bytes]:
    """The request bodies, 1 and 100 rows, as ``{"inputs": ...}`` JSON."""
    import make_serving_models  # type: ignore[import-not-found]  # scripts/, put on sys.path above
    import numpy as np

    bodies = {}
    for n in (1, 100):
        if kind == "text":
            rows: Any = make_serving_models.texts(n)
        else:
            rows = np.random.default_rng(n).normal(size=(n, make_serving_models.FEATURES)).round(6).tolist()
        bodies[n] = json.dumps({"inputs": rows}).encode()
    return bodies


def _leaves(value: Any) -> list:
    if isinstance(value, dict):
        return [x for k in sorted(value) for x in _leaves(value[k])]
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    return [value]


def same_answers(a: bytes, b: bytes) -> bool:
    """Whether two JSON answers hold the same predictions (whatever the wrapping key), numbers to 1e-4."""
    def unwrap(doc: Any) -> Any:
        if isinstance(doc, dict) and len(doc) == 1 and next(iter(doc)) in ("outputs", "predictions"):
            return next(iter(doc.values()))
        return doc

    x, y = _leaves(unwrap(json.loads(a))), _leaves(unwrap(json.loads(b)))
    if len(x) != len(y):
        return False
    for u, v in zip(x, y):
        if isinstance(u, (int, float)) and isinstance(v, (int, float)) and not isinstance(u, bool):
            if not math.isclose(u, v, rel_tol=1e-4, abs_tol=1e-6):
                return False
        elif u != v:
            return False
    return True


@dataclass
class Point:
    model: str
    rows: int
    concurrency: int
    ours: Result
    theirs: Result
    ours_rate: float
    theirs_rate: float
    ceiling: float = math.nan
    predict: float = math.nan  # one predict call alone: median wall seconds
    predict_cpu: float = math.nan  # ... and mean CPU seconds
    spread: str = ""  # the connections each server process held

    @property
    def label(self) -> str:
        return f"{self.model}, {self.rows} row{'s' if self.rows > 1 else ''}, c={self.concurrency}"

    def row(self) -> str:
        cells = [f"  {self.label.split(', ', 1)[1]:16}"]
        for r, rate in ((self.ours, self.ours_rate), (self.theirs, self.theirs_rate)):
            cells.append(f"{rate:7.0f} {ms(percentile(r.latencies, 50)):>7} {ms(percentile(r.latencies, 99)):>7} "
                         f"{ms(r.server_cpu / max(1, len(r.latencies))):>7}")
        ratio, share = self.ours_rate / self.theirs_rate, self.ours_rate / self.ceiling
        cells.append(f"{ratio:7.2f}  {self.ceiling:7.0f} {share:6.2f}")
        return "  ".join(cells)


HEADER = (f"  {'':16}  {'--------- ours ---------':>31}  {'-------- MLflow --------':>31}  {'ours/':>7}  "
          f"{'ceiling':>7} {'ours/':>6}\n"
          f"  {'':16}  " + "  ".join([f"{'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'cpu/req':>7}"] * 2)
          + f"  {'MLflow':>7}  {'req/s':>7} {'ceil':>6}")


def interleaved(a: Client, b: Client, total: int, concurrency: int,
                seconds: float) -> tuple[Result, Result, float, float]:
    """Warm-up, then ROUNDS rounds alternating ``a`` and ``b``, each of ``total / ROUNDS`` requests and at least
    ``MIN_ROUND`` seconds (a round of a few hundred fast requests lasted under 0.1 s, where one stall of the machine
    or the last requests draining moved its rate by several percent), at most ``seconds / ROUNDS``: pooled results
    and median round rates."""
    warm = max(2 * concurrency, min(50, total))
    for client in (a, b):
        r = client.run(warm, concurrency, max(0.5, seconds / 10))
        if r.errors:
            raise SystemExit(f"requests to port {client.port} failed: {r.errors[:3]}")
    pooled = [Result(), Result()]
    rates: list[list[float]] = [[], []]
    per = math.ceil(total / ROUNDS)
    for i in range(ROUNDS):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for j in order:
            r = (a, b)[j].run(per, concurrency, seconds / ROUNDS, min(MIN_ROUND, seconds / ROUNDS))
            pooled[j].merge(r)
            rates[j].append(r.rate)
    return pooled[0], pooled[1], statistics.median(rates[0]), statistics.median(rates[1])


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}" if seconds < 0.1 else f"{seconds * 1e3:.0f}"


def build(folder: Path, kinds: list[str], env: dict) -> dict[str, dict]:
    started = time.perf_counter()
    build_env = {**env, "USE_TF": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}  # the builder needs no TensorFlow
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_serving_models.py"), str(folder), *kinds],
                          env=build_env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"building the models failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    print(f"built {', '.join(kinds)} in {time.perf_counter() - started:.0f} s", flush=True)
    return {k: {"artifact": folder / f"{k}.tar.gz", "native": folder / k, "mlflow": folder / f"{k}-mlflow"}
            for k in kinds}


PLAIN_LOAD = """
import sys, time
import numpy
started, cpu = time.perf_counter(), time.process_time()
import loaders
from artifact_tools import codec
loaders.load(sys.argv[1]).predict(codec.decode(sys.argv[2].encode(), codec.JSON).data)
print(time.perf_counter() - started, time.process_time() - cpu)
"""


def plain_load(artifact: Path, body: bytes, env: dict, cache: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of ``PLAIN_LOAD`` in a fresh interpreter with an empty extraction cache."""
    proc = subprocess.run([sys.executable, "-c", PLAIN_LOAD, str(artifact), body.decode()], cwd=ROOT,
                          env={**env, "ARTIFACT_TOOLS_CACHE": str(cache)}, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"the plain load of {artifact.name} failed:\n{proc.stderr[-2000:]}")
    wall, cpu = proc.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def multi_model_cold(models: dict[str, dict], bodies: dict[str, bytes], args: argparse.Namespace, env: dict,
                     tmp: Path) -> tuple[dict[str, tuple[float, ...]], Server]:
    """Per model, medians of: the first request's wall time and the server's CPU time meanwhile (each on a fresh
    multi-model server, so that no other model's load has imported anything for it), the plain load's wall and
    CPU time. Returns them and a multi-model server of all the models, running, none loaded yet."""
    folder = tmp / "multi"
    folder.mkdir()
    for kind, m in models.items():
        shutil.copy(m["artifact"], folder / f"{kind}.tar.gz")
    cold: dict[str, list[tuple[float, float]]] = {k: [] for k in models}
    plain: dict[str, list[tuple[float, float]]] = {k: [] for k in models}
    kinds = list(models)
    for run in range(args.cold_runs):
        order = kinds[run % len(kinds):] + kinds[:run % len(kinds)]
        for kind in order:
            server = ours(None, args.workers, {**env, "ARTIFACT_TOOLS_CACHE": str(tmp / f"cache-multi-{run}-{kind}")},
                          tmp / f"multi-{run}-{kind}.log", multi_model=folder)
            try:
                server.wait_ready()
                cpu = server.cpu()
                status, answer, took = one_request(server.port, bodies[kind], {TARGET_MODEL: f"{kind}.tar.gz"})
                cold[kind].append((took, server.cpu() - cpu))
            finally:
                server.stop()
            if status != 200:
                raise SystemExit(f"multi-model first request to {kind}: {status} {answer[:300]!r}")
            plain[kind].append(plain_load(models[kind]["artifact"], bodies[kind], env,
                                          tmp / f"cache-plain-{run}-{kind}"))
        print(f"  multi-model run {run + 1}: first request "
              + ", ".join(f"{k} {cold[k][-1][0]:.2f} s (plain {plain[k][-1][0]:.2f} s)" for k in order), flush=True)
    server = ours(None, args.workers, {**env, "ARTIFACT_TOOLS_CACHE": str(tmp / "cache-multi")}, tmp / "multi.log",
                  multi_model=folder)
    server.wait_ready()
    return {k: (statistics.median(c[0] for c in cold[k]), statistics.median(c[1] for c in cold[k]),
                statistics.median(c[0] for c in plain[k]), statistics.median(c[1] for c in plain[k]))
            for k in kinds}, server


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--requests", type=int, default=None, help="requests per point per server (default 2000)")
    p.add_argument("--seconds", type=float, default=None,
                   help="at most this long per point per server (default 6; the bound reached first ends it)")
    p.add_argument("--workers", type=int, default=2, help="worker processes of each server (default 2)")
    p.add_argument("--models", default="forest,xgboost,text", help="comma-separated: forest, xgboost, text")
    p.add_argument("--cold-runs", type=int, default=None, help="multi-model server starts (default 3)")
    p.add_argument("--quick", action="store_true", help="a smoke run: few requests, one multi-model start")
    args = p.parse_args()
    kinds = [k.strip() for k in args.models.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in TITLES]
    if unknown or not kinds:
        p.error(f"--models takes {', '.join(TITLES)}, not {','.join(unknown) or 'nothing'}")
    args.requests = args.requests or (300 if args.quick else 2000)
    args.seconds = args.seconds or (1.5 if args.quick else 6.0)
    args.cold_runs = args.cold_runs or (1 if args.quick else 3)
    ceiling_seconds = 0.5 if args.quick else 2.0
    solo_seconds = 0.5 if args.quick else 1.5

    began = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    env = {**os.environ, **OFFLINE, "ARTIFACT_TOOLS_CACHE": str(tmp / "cache"),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}  # uvicorn
    threads = thread_budget(args.workers)
    print(f"workers: {args.workers} per server; predict threads per worker (ours and the ceiling): {threads}; "
          f"usable cores: {len(os.sched_getaffinity(0))}; per point and server: {args.requests} requests "
          f"or more (unless cut by the time), "
          f"rounds of >= {min(MIN_ROUND, args.seconds / ROUNDS):g} s, <= {args.seconds:g} s in all", flush=True)
    running: list[Any] = []
    points: list[Point] = []
    colds: dict[str, tuple[float, ...]] = {}
    warms: dict[str, tuple[float, float]] = {}
    try:
        models = build(tmp / "models", kinds, env)
        bodies = {k: payloads(k) for k in kinds}

        print(f"\nmulti-model: first request to each model on a fresh `serve --multi-model` ({args.cold_runs} "
              "round(s)), against a plain load + predict in a fresh interpreter", flush=True)
        section = time.perf_counter()
        colds, multi = multi_model_cold(models, {k: b[1] for k, b in bodies.items()}, args, env, tmp)
        print(f"  ({time.perf_counter() - section:.0f} s)", flush=True)
        running.append(multi)

        for kind in kinds:
            m = models[kind]
            title = TITLES[kind]
            print(f"\n== {title}", flush=True)
            model_began = time.perf_counter()
            ceiling = Ceiling(kind, m["native"], args.workers, env, tmp / f"ceiling-{kind}.log")
            running.append(ceiling)
            a = ours(m["artifact"], args.workers, env, tmp / f"ours-{kind}.log")
            running.append(a)
            b = mlflow(m["mlflow"], args.workers, env, tmp / f"mlflow-{kind}.log")
            running.append(b)
            for server in (a, b):
                server.wait_ready()
            ceiling.wait_ready()
            for n, body in bodies[kind].items():
                sa, ra, _ = one_request(a.port, body)
                sb, rb, _ = one_request(b.port, body)
                if sa != 200 or sb != 200:
                    raise SystemExit(f"{title}, {n} rows: ours {sa} {ra[:300]!r}; MLflow {sb} {rb[:300]!r}")
                if not same_answers(ra, rb):
                    print(f"  WARNING: the answers to {n} row(s) differ: ours {ra[:200]!r}, MLflow {rb[:200]!r}")
            print(HEADER)
            generator = 0.0
            for n, body in bodies[kind].items():
                before = ceiling.rate(body, ceiling_seconds)
                predict, predict_cpu = ceiling.single_call(body, solo_seconds)
                mine = []
                for c in (1, 16):
                    ca, cb = Client(a.port, body, meter=a.cpu), Client(b.port, body, meter=b.cpu)
                    try:
                        ra_, rb_, rate_a, rate_b = interleaved(ca, cb, args.requests, c, args.seconds)
                        spread = f"ours {a.spread()}, MLflow {b.spread()}"
                    finally:
                        ca.close()
                        cb.close()
                    mine.append(Point(title, n, c, ra_, rb_, rate_a, rate_b, predict=predict,
                                      predict_cpu=predict_cpu, spread=spread))
                after = ceiling.rate(body, ceiling_seconds)
                for point in mine:
                    point.ceiling = (before + after) / 2
                    points.append(point)
                    print(point.row(), flush=True)
                    generator = max(generator, point.ours.cpu / point.ours.wall, point.theirs.cpu / point.theirs.wall)
                    for who, r in (("ours", point.ours), ("MLflow", point.theirs)):
                        if r.errors:
                            print(f"    {who}: {len(r.errors)} failed request(s), first: {r.errors[0]}")
                print(f"  {n} row{'s' if n > 1 else ''}: ceiling {before:.0f}/s before the points, {after:.0f}/s "
                      f"after; one predict call alone {ms(predict)} ms ({ms(predict_cpu)} ms CPU); connections per "
                      f"worker at c=16: {mine[-1].spread}", flush=True)
            # multi-model warm: the same 1-row request, multi-model server vs this single-model server
            cm = Client(multi.port, bodies[kind][1], {TARGET_MODEL: f"{kind}.tar.gz"}, meter=multi.cpu)
            cs = Client(a.port, bodies[kind][1], meter=a.cpu)
            try:
                rm, rs, _, _ = interleaved(cm, cs, max(300, args.requests // 2), 1, args.seconds / 2)
            finally:
                cm.close()
                cs.close()
            warms[kind] = (percentile(rm.latencies, 50), percentile(rs.latencies, 50))
            cold_wall, cold_cpu, plain_wall, plain_cpu = colds[kind]
            cpu_m, cpu_s = rm.server_cpu / len(rm.latencies), rs.server_cpu / len(rs.latencies)
            print(f"  multi-model, warm, 1 row, c=1: p50 {ms(warms[kind][0])} ms ({ms(cpu_m)} ms CPU/request) "
                  f"against {ms(warms[kind][1])} ms ({ms(cpu_s)} ms) single-model")
            print(f"  multi-model, first request: {cold_wall:.2f} s ({cold_cpu:.2f} s server CPU) against a plain "
                  f"load + predict {plain_wall:.2f} s ({plain_cpu:.2f} s CPU)")
            print(f"  (the load generator used at most {generator:.0%} of a core at these points; "
                  f"{time.perf_counter() - model_began:.0f} s for this model)", flush=True)
            for thing in (a, b, ceiling):
                thing.stop()
                running.remove(thing)
    finally:
        for thing in reversed(running):
            thing.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    summary(points, colds, warms, kinds)
    print(f"\n(whole run: {time.perf_counter() - began:.0f} s)")


def summary(points: list[Point], colds: dict, warms: dict, kinds: list[str]) -> None:
    rows: list[tuple[str, str, bool]] = []
    for pt in points:
        r = pt.ours_rate / pt.theirs_rate
        rows.append((f"ours >= MLflow req/s: {pt.label}", f"{r:.2f}x", r >= 1))
    for pt in points:
        if pt.rows == 1 and pt.concurrency == 16:
            r = pt.ours_rate / pt.theirs_rate
            rows.append((f"ours >= 3x MLflow req/s: {pt.label}", f"{r:.2f}x", r >= 3))
    for pt in points:
        if pt.concurrency == 16:
            r = pt.ours_rate / pt.ceiling
            rows.append((f"ours >= 0.9x compute ceiling: {pt.label}",
                         f"{r:.2f} ({pt.ours_rate:.0f} of {pt.ceiling:.0f}/s)", r >= 0.9))
    for pt in points:
        if pt.concurrency == 1:
            d = percentile(pt.ours.latencies, 50) - pt.predict
            rows.append((f"p50 at c=1 <= predict + 1 ms: {pt.label.rsplit(', c=', 1)[0]}",
                         f"{d * 1e3:+.2f} ms ({ms(pt.predict)} ms predict)", d <= 0.001))
    for kind in kinds:
        if kind in colds:
            cold, _, plain, _ = colds[kind]
            rows.append((f"multi-model first request <= 1.1x plain load: {TITLES[kind]}",
                         f"{cold / plain:.2f}x ({cold:.2f} s / {plain:.2f} s)", cold <= 1.1 * plain))
    for kind in kinds:
        if kind in warms:
            multi, single = warms[kind]
            rows.append((f"multi-model warm p50 <= single-model + 1 ms: {TITLES[kind]}",
                         f"{(multi - single) * 1e3:+.2f} ms", multi - single <= 0.001))
    width = max(len(r[0]) for r in rows) if rows else 10
    print(f"\n{'target':{width}}  {'measured':32}  result")
    for what, measured, ok in rows:
        print(f"{what:{width}}  {measured:32}  {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
