"""Issue 9's hostile suite: artifacts written as an attacker would (``scripts/make_hostile.py``), each opened with
the CLI as a user runs it, in a fresh interpreter.

For every case (the generator's manifest says what each one hides and which rule each command follows):
- ``inspect --json`` exits 2 with one short sentence, or exits 0 and does not call the artifact ``safe`` (for a
  pickle calling a dangerous function the verdict must be ``dangerous``; for a Lambda, TorchScript or a graph op,
  ``code`` or ``dangerous``); resource and class-9 cases only need exit 0 or 2, bounded;
- ``load`` (default trust) exits 2 with one sentence; so does ``load --trust`` for pickle payloads (classes 1, 2,
  3's pickles, 5, 6), where trust=True must still refuse dangerous calls; ``loaders.load`` in a fresh interpreter
  raises an ArtifactError with exit code 2 for a subset;
- no payload ran: the case's canary path does not exist after any command (payloads only ever create it);
- resource cases run under ``RLIMIT_AS`` (2 GiB) and ``RLIMIT_FSIZE`` (1 GiB) with a 60 s wall-clock limit, their
  extraction cache and ``TMPDIR`` inside the test's own folder, and leave at most 64 MiB behind.
The oracle that the payloads are real: each one is also opened by the framework's own unguarded loader
(``joblib.load``, ``pickle.load``, ``torch.load(weights_only=False)``, ``tf.saved_model.load``, Keras with
``safe_mode=False``) and must then create its canary; the hostile scikit-learn models still predict
(``test_payload_is_live``).

The server cases send hostile request patterns to a real ``artifact-tools serve`` on 127.0.0.1.

Cases run in a thread pool of two (each command is its own subprocess); the tests read their results.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
import make_hostile  # noqa: E402
import make_samples  # noqa: E402

MIB = 1 << 20
GIB = 1 << 30
RESOURCE_AS = 2 * GIB
RESOURCE_FSIZE = 1 * GIB
RESOURCE_TIMEOUT = 60
COMMAND_TIMEOUT = 240
MAX_SENTENCE = 500
MAX_LEFT_ON_DISK = 64 * MIB
WORKERS = 2

CASE_IDS = list(make_hostile.CASES)


# ------------------------------------------------------------------------------------------------------------
# Running commands


def _limits(resource_case: bool):
    if not resource_case:
        return None

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (RESOURCE_AS, RESOURCE_AS))
        resource.setrlimit(resource.RLIMIT_FSIZE, (RESOURCE_FSIZE, RESOURCE_FSIZE))

    return apply


class Outcome:
    """One command's result: exit status (None when killed at the time limit), output, time, canary, disk."""

    def __init__(self, argv, rc, stdout, stderr, seconds, canary, left_on_disk):
        self.argv, self.rc, self.stdout, self.stderr = argv, rc, stdout, stderr
        self.seconds, self.canary, self.left_on_disk = seconds, canary, left_on_disk

    def brief(self) -> str:
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        tail = lines[-1][:300] if lines else ""
        rc = "killed at the time limit" if self.rc is None else f"exit {self.rc}"
        return f"{rc} in {self.seconds:.1f}s; stderr: {tail!r}"


def _disk_usage(folder: Path) -> int:
    """Bytes under ``folder``: the larger of apparent size and allocated blocks (sparse files count in full)."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            total += max(st.st_size, st.st_blocks * 512)
    return total


def _clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


def _canary_present(case: dict, wait: bool) -> bool:
    path = case.get("canary")
    if not path:
        return False
    if wait:  # payloads that start a process (subprocess.Popen) create the canary a moment later
        time.sleep(0.5)
    return os.path.lexists(path)


def _remove_canary(case: dict) -> None:
    path = case.get("canary")
    if path and os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif path and os.path.lexists(path):
        os.unlink(path)


def run_command(case: dict, argv: list[str], work: Path, *, timeout: float | None = None) -> Outcome:
    """``argv`` in a fresh interpreter with the case's own cache and TMPDIR; the canary is checked and removed."""
    scratch, cache, tmp = work / "cwd", work / "cache", work / "tmp"
    for d in (scratch, cache, tmp):
        _clear(d)
    env = {**os.environ, "ARTIFACT_TOOLS_CACHE": str(cache), "TMPDIR": str(tmp), "TF_CPP_MIN_LOG_LEVEL": "3",
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    limit = timeout or (RESOURCE_TIMEOUT if case["resource"] else COMMAND_TIMEOUT)
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=scratch, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_limits(case["resource"]), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=limit)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc = None
    seconds = time.monotonic() - start
    canary = _canary_present(case, case.get("async", False))
    _remove_canary(case)
    left = _disk_usage(cache) + _disk_usage(tmp) + _disk_usage(scratch)
    for d in (scratch, cache, tmp):
        _clear(d)
    return Outcome(argv, rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), seconds, canary, left)


CLI = [sys.executable, "-m", "artifact_tools"]

API_SCRIPT = r"""
import json, sys
import loaders
from artifact_tools.errors import ArtifactError
path, trust = sys.argv[1], json.loads(sys.argv[2])
try:
    model = loaders.load(path, trust=trust)
    out = {"loaded": True, "framework": model.framework}
except ArtifactError as e:
    out = {"raised": type(e).__name__, "exit_code": getattr(e, "exit_code", None), "message": str(e)[:600]}
except BaseException as e:
    out = {"raised": type(e).__name__, "exit_code": None, "message": str(e)[:600], "unexpected": True}
print("RESULT " + json.dumps(out))
"""

# The unguarded loaders a careless migration job would use: they prove that each payload really runs. One
# interpreter opens a batch of artifacts (a JSON list of [loader, artifact, member, rows]) one after the other.
NAIVE_SCRIPT = r"""
import json, os, sys, tarfile, tempfile, zipfile
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

def open_one(loader, artifact, member, rows):
    if os.path.isdir(artifact) or loader == "keras":
        root = artifact
    else:
        root = tempfile.mkdtemp()
        if zipfile.is_zipfile(artifact):
            zipfile.ZipFile(artifact).extractall(root)
        else:
            with tarfile.open(artifact) as tf:
                tf.extractall(root, filter="data")
    path = os.path.join(root, member) if member else root
    if loader == "joblib":
        import joblib
        import numpy as np
        model = joblib.load(path)
        model.predict(np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32))
        return "and predicted"
    elif loader == "pickle":
        import pickle
        with open(path, "rb") as f:
            pickle.load(f)
    elif loader == "torch":
        import torch
        torch.load(path, weights_only=False)
    elif loader == "keras":
        import keras
        keras.models.load_model(path, compile=False, safe_mode=False)
    elif loader in ("tf", "tf-signature"):
        import numpy as np
        import tensorflow as tf
        m = tf.saved_model.load(path)
        if loader == "tf-signature":
            m.signatures["serving_default"](tf.constant(np.loadtxt(rows, delimiter=",", ndmin=2), tf.float32))

for job in json.loads(sys.argv[1]):
    try:
        said = open_one(*job) or ""
        print("NAIVE loaded", said, job[1])
    except BaseException as e:
        print(f"NAIVE raised {type(e).__name__}: {str(e)[:300]}", job[1])
"""
NAIVE_FAMILIES = {"joblib": "pickle", "pickle": "pickle", "torch": "torch", "tf": "tf", "tf-signature": "tf",
                  "keras": "tf"}


class Suite:
    """The generated cases, and their results computed in a thread pool as soon as the suite exists."""

    def __init__(self, out: Path, work: Path, manifest: dict, selected: set[str]):
        self.out, self.work = out, work
        self.cases = {c["id"]: c for c in manifest["cases"]}
        self._pool = ThreadPoolExecutor(max_workers=WORKERS)
        self._futures: dict[str, Future] = {}
        self._naive: dict[str, Outcome] | None = None
        self._naive_lock = threading.Lock()
        order = sorted(selected, key=lambda cid: (not self.cases[cid]["requires"], cid))  # slow ones first
        for cid in order:
            if not self.cases[cid]["skipped"]:
                self._futures[cid] = self._pool.submit(self._run_case, self.cases[cid])

    def results(self, cid: str) -> dict:
        return self._futures[cid].result()

    def naive(self, cid: str) -> Outcome:
        """The unguarded loader's outcome for ``cid``; all batches run once, after every library command."""
        with self._naive_lock:
            if self._naive is None:
                for f in self._futures.values():
                    f.exception()
                self._naive = self._run_naive()
        return self._naive[cid]

    def _run_naive(self) -> dict[str, Outcome]:
        batches: dict[str, list[dict]] = {}
        for cid in self._futures:
            case = self.cases[cid]
            if case.get("naive") and not case["resource"]:
                batches.setdefault(NAIVE_FAMILIES[case["naive"]["loader"]], []).append(case)

        def run(family: str, cases: list[dict]) -> dict[str, Outcome]:
            jobs = [[c["naive"]["loader"], self.artifact(c), c["naive"]["member"],
                     str(self.out / c["predict"]) if c["predict"] else None] for c in cases]
            batch = {"id": f"naive-{family}", "resource": False, "canary": None}
            o = run_command(batch, [sys.executable, "-c", NAIVE_SCRIPT, json.dumps(jobs)], self.work / batch["id"])
            time.sleep(0.5)  # payloads that start a process create their canary a moment later
            found = {}
            for c in cases:
                found[c["id"]] = Outcome(o.argv, o.rc, o.stdout, o.stderr, o.seconds, _canary_present(c, False), 0)
                _remove_canary(c)
            return found

        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            parts = list(pool.map(lambda kv: run(*kv), batches.items()))
        return {k: v for part in parts for k, v in part.items()}

    def dump(self, path: Path) -> None:
        """Every command's outcome as JSON (``HOSTILE_RESULTS=path``), for reading failures in bulk."""
        table = {}
        for cid, f in self._futures.items():
            if f.done() and not f.exception():
                table[cid] = {name: {"rc": o.rc, "seconds": round(o.seconds, 2), "canary": o.canary,
                                     "left_on_disk": o.left_on_disk, "stderr": o.stderr[-600:],
                                     "stdout": o.stdout[:600]} if isinstance(o, Outcome) else o
                              for name, o in f.result().items()}
        path.write_text(json.dumps(table, indent=1))

    def artifact(self, case: dict) -> str:
        return str(self.out / case["path"])

    def _run_case(self, case: dict) -> dict:
        work = self.work / case["id"]
        art = self.artifact(case)
        checks = case["checks"]
        res: dict = {}
        if checks.get("inspect"):
            res["inspect"] = run_command(case, [*CLI, "inspect", art, "--json"], work)
        load = [*CLI, "load", art]
        if case["predict"]:
            load += ["--predict", str(self.out / case["predict"])]
        if checks.get("load"):
            res["load"] = run_command(case, load, work)
        if checks.get("load_trust"):
            res["load --trust"] = run_command(case, [*load, "--trust"], work)
        if case["api"]:
            for trust in (False, True):
                res[f"loaders.load(trust={trust})"] = run_command(
                    case, [sys.executable, "-c", API_SCRIPT, art, json.dumps(trust)], work)
        if case.get("async") and case.get("canary"):
            # a process started by a payload may create the canary after the check that followed its command
            time.sleep(1.5)
            res["late canary"] = os.path.lexists(case["canary"])
            _remove_canary(case)
        return res

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def suite(request, tmp_path_factory):
    """Run the generator once (a fresh interpreter), then start every selected case in the background."""
    root = tmp_path_factory.mktemp("hostile")
    out, canaries, work = root / "artifacts", root / "canaries", root / "work"
    proc = subprocess.run([sys.executable, str(PROJECT_ROOT / "scripts" / "make_hostile.py"), str(out),
                           "--canary-dir", str(canaries)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, f"make_hostile.py failed:\n{proc.stderr[-3000:]}"
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(c["id"] for c in manifest["cases"]) == sorted(CASE_IDS)
    here = sys.modules[__name__]
    selected = {item.callspec.params["case_id"] for item in request.session.items
                if getattr(item, "module", None) is here and hasattr(item, "callspec")
                and "case_id" in item.callspec.params} or set(CASE_IDS)
    s = Suite(out, work, manifest, selected)
    yield s
    s.close()
    if os.environ.get("HOSTILE_RESULTS"):
        s.dump(Path(os.environ["HOSTILE_RESULTS"]))


def _case(suite: Suite, cid: str) -> dict:
    case = suite.cases[cid]
    if case["skipped"]:
        pytest.skip(f"{cid} was not built: {case['skipped']}")
    return case


# ------------------------------------------------------------------------------------------------------------
# Judging one command


def sentence_problem(o: Outcome, strict: bool) -> str | None:
    """Why stderr is not one short sentence (``strict``: nothing else on stderr at all), or None."""
    if "Traceback (most recent call last)" in o.stderr:
        return "printed a traceback"
    lines = [ln for ln in o.stderr.splitlines() if ln.strip()]
    ours = [ln for ln in lines if ln.startswith("artifact-tools:")]
    if len(ours) != 1:
        return f"expected one 'artifact-tools:' line on stderr, got {len(ours)}"
    if "internal error" in ours[0]:
        return "reported an internal error"
    if len(ours[0]) > MAX_SENTENCE:
        return f"its sentence is {len(ours[0])} characters long"
    if strict and len(lines) != 1:
        return f"stderr holds {len(lines)} lines, not one"
    return None


def judge(name: str, rule: str, o: Outcome, case: dict) -> list[str]:
    """The ways one command broke its rule (empty when it kept it)."""
    problems = []
    if o.canary:
        problems.append(f"{name}: the payload ran (canary {case['canary']} was created)")
    if o.rc is None:
        problems.append(f"{name}: did not finish within its time limit ({o.brief()})")
        return problems
    if o.rc < 0:
        problems.append(f"{name}: killed by signal {-o.rc} ({o.brief()})")
        return problems
    if o.left_on_disk > MAX_LEFT_ON_DISK:
        problems.append(f"{name}: left {o.left_on_disk / MIB:.0f} MiB in its cache/TMPDIR")
    strict = name == "inspect"
    if rule == "refuse":
        if o.rc != 2:
            problems.append(f"{name}: expected exit 2, got {o.brief()}")
        elif p := sentence_problem(o, strict):
            problems.append(f"{name}: {p}")
    elif rule == "refuse-or-flag":
        if o.rc == 2:
            if p := sentence_problem(o, strict):
                problems.append(f"{name}: {p}")
        elif o.rc == 0:
            try:
                verdict = json.loads(o.stdout)["trust"]["verdict"]
            except (ValueError, KeyError, TypeError):
                problems.append(f"{name}: exit 0 without a JSON report with trust.verdict")
            else:
                allowed = case["checks"].get("verdicts")
                if verdict == "safe":
                    problems.append(f"{name}: reported trust verdict 'safe'")
                elif allowed and verdict not in allowed:
                    problems.append(f"{name}: reported trust verdict {verdict!r}, expected {' or '.join(allowed)}")
        else:
            problems.append(f"{name}: expected exit 2 or a non-safe report, got {o.brief()}")
    elif rule == "no-crash":
        if o.rc not in (0, 2):
            problems.append(f"{name}: expected exit 0 or 2, got {o.brief()}")
        elif o.rc == 2 and (p := sentence_problem(o, strict)):
            problems.append(f"{name}: {p}")
        elif len(o.stderr) > 20_000:
            problems.append(f"{name}: wrote {len(o.stderr)} characters to stderr")
    else:  # pragma: no cover
        raise AssertionError(f"unknown rule {rule}")
    return problems


def judge_api(name: str, o: Outcome, case: dict) -> list[str]:
    problems = []
    if o.canary:
        problems.append(f"{name}: the payload ran (canary {case['canary']} was created)")
    line = next((ln for ln in o.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        return problems + [f"{name}: no result ({o.brief()})"]
    res = json.loads(line[len("RESULT "):])
    if res.get("loaded"):
        problems.append(f"{name}: loaded the artifact instead of refusing it")
    elif res.get("exit_code") != 2:
        problems.append(f"{name}: raised {res['raised']} (exit code {res.get('exit_code')}), not an ArtifactError "
                        f"with exit code 2: {res['message'][:200]}")
    return problems


# ------------------------------------------------------------------------------------------------------------
# The cases


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_hostile_case(suite, case_id):
    """Every command keeps its rule for this case and no payload runs (all broken rules are listed)."""
    case = _case(suite, case_id)
    results = suite.results(case_id)
    problems: list[str] = []
    checks = case["checks"]
    for name, rule in (("inspect", checks.get("inspect")), ("load", checks.get("load")),
                       ("load --trust", checks.get("load_trust"))):
        if rule:
            problems += judge(name, rule, results[name], case)
    for name, o in results.items():
        if name.startswith("loaders.load"):
            problems += judge_api(name, o, case)
    if results.get("late canary"):
        problems.append("a payload created the canary late (after one of the commands above had been checked)")
    assert not problems, f"{case_id} ({case['hides']}):\n  " + "\n  ".join(problems)


NAIVE_CASES = [cid for cid in CASE_IDS if make_hostile.CASES[cid] not in (7, 9)]


@pytest.mark.parametrize("case_id", NAIVE_CASES)
def test_payload_is_live(suite, case_id):
    """The oracle: the framework's own unguarded loader runs the payload (so a missing canary above means the
    library refused it, not that the payload is inert)."""
    case = _case(suite, case_id)
    naive = case.get("naive")
    if not naive:
        pytest.skip(f"{case_id} carries no payload that creates a canary ({case['hides']})")
    if naive.get("needs"):
        pytest.importorskip(naive["needs"], reason=f"the unguarded loader needs {naive['needs']} for {case_id}")
    o = suite.naive(case_id)
    said = [ln for ln in o.stdout.splitlines() if ln.endswith(suite.artifact(case))] or [o.brief()]
    assert o.canary, f"{case_id}: the unguarded {naive['loader']} loader did not run the payload: {said[0][:400]}"
    if naive["loader"] == "joblib":  # the hostile model still works, so nobody would notice
        assert "and predicted" in said[0], f"{case_id}: the model did not predict: {said[0][:400]}"


def test_suite_covers_every_class():
    """At least three cases for every class of the issue (8 is the server, below)."""
    per_class: dict[int, int] = {}
    for cls in make_hostile.CASES.values():
        per_class[cls] = per_class.get(cls, 0) + 1
    assert all(per_class.get(c, 0) >= 3 for c in (1, 2, 3, 4, 5, 6, 7, 9)), per_class


# ------------------------------------------------------------------------------------------------------------
# Server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str, timeout: float = 5) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        f = s.makefile("rb")
        line = f.readline()
        return int(line.split()[1]) if line else 0


def read_response(f) -> tuple[int, bytes]:
    """One HTTP/1.1 response from a buffered socket file: status and body (Content-Length framed)."""
    status_line = f.readline()
    if not status_line:
        raise EOFError("connection closed")
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = f.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    return status, f.read(length) if length else b""


MAX_PAYLOAD = 4096


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("gunicorn")
    folder = tmp_path_factory.mktemp("hostile-serve")
    artifact = make_samples.build_sklearn(folder)
    port = free_port()
    env = {**os.environ, "ARTIFACT_TOOLS_CACHE": str(folder / "cache")}
    log = folder / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([*CLI, "serve", str(artifact), "--port", str(port), "--workers", "2",
                                 "--max-payload", str(MAX_PAYLOAD)], cwd=folder, env=env, stdout=fh,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited early:\n{log.read_text(errors='replace')[-3000:]}"
        try:
            if http_get(port, "/ping") == 200:
                break
        except OSError:
            pass
        time.sleep(0.2)
    else:
        proc.kill()
        raise AssertionError(f"server did not answer /ping:\n{log.read_text(errors='replace')[-3000:]}")
    yield port
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(40)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_server_slow_clients_do_not_starve_ping(server):
    """Three clients send one header line a second and never finish; /ping must keep answering meanwhile."""
    slow = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", server), timeout=5)
        s.sendall(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n")
        slow.append(s)
    failures = []
    try:
        for second in range(6):
            started = time.monotonic()
            for s in slow:
                try:
                    s.sendall(f"X-Slow-{second}: {'a' * 10}\r\n".encode())
                except OSError:
                    pass  # a server may cut off a client that is this slow
            try:
                status = http_get(server, "/ping", timeout=5)
            except OSError as e:
                status = f"{type(e).__name__}: {e}"
            if status != 200:
                failures.append((second, status))
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    finally:
        for s in slow:
            s.close()
    assert not failures, f"/ping did not answer while slow clients dribbled headers: {failures}"


def test_server_answers_51_pipelined_requests(server):
    """51 requests written at once on one keep-alive connection: every one is answered, in order."""
    body = b"0.1,0.2,0.3,0.4\n"
    ping = b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    invoke = (b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    requests = [ping if i % 2 == 0 else invoke for i in range(51)]
    statuses: list = []
    with socket.create_connection(("127.0.0.1", server), timeout=10) as s:
        s.sendall(b"".join(requests))
        f = s.makefile("rb")
        deadline = time.monotonic() + 30
        while len(statuses) < len(requests) and time.monotonic() < deadline:
            try:
                statuses.append(read_response(f)[0])
            except (EOFError, OSError, ValueError, IndexError) as e:
                statuses.append(f"{type(e).__name__}")
                break
    answered = [st for st in statuses if st == 200]
    assert len(answered) == 51, f"{len(answered)} of 51 pipelined requests answered 200: {statuses[:5]}..."


def test_server_expect_continue_over_cap_gets_413_without_100(server):
    with socket.create_connection(("127.0.0.1", server), timeout=10) as s:
        s.sendall(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
                  b"Content-Length: " + str(MAX_PAYLOAD * 10).encode() + b"\r\nExpect: 100-continue\r\n\r\n")
        first = s.makefile("rb").readline()
    assert first.split()[1:2] == [b"413"], f"first response line was {first!r}, not 413"
    assert http_get(server, "/ping") == 200  # and the server is still there


@pytest.mark.parametrize("case_id", ["c1-popen-via-numpy-distutils", "c1-cdll-via-xgboost-core",
                                     "c2-memmap-w-plus"])
def test_serve_refuses_hostile_artifact(suite, case_id, tmp_path):
    """``serve`` on a hostile scikit-learn artifact exits 2 with one sentence before opening a socket."""
    pytest.importorskip("gunicorn")
    case = _case(suite, case_id)
    port = free_port()
    env = {**os.environ, "ARTIFACT_TOOLS_CACHE": str(tmp_path / "cache"), "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([*CLI, "serve", suite.artifact(case), "--port", str(port), "--workers", "1"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    served = False
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if http_get(port, "/ping", timeout=2) == 200:
                served = True
                break
        except OSError:
            pass
        time.sleep(0.3)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    _out, err = proc.communicate()
    ran = _canary_present(case, wait=True)
    _remove_canary(case)
    assert not ran, f"serve ran the payload of {case_id} (canary created)"
    assert not served, f"serve started serving the hostile artifact {case_id}"
    o = Outcome([], proc.returncode, "", err.decode("utf-8", "replace"), 0.0, False, 0)
    assert o.rc == 2, f"serve {case_id}: expected exit 2, got {o.brief()}"
    assert sentence_problem(o, strict=False) is None, sentence_problem(o, strict=False)
