"""Git-based container serving: a Git repository that builds and deploys a serving container for the model.

The repository (``out``) holds:

- ``model/``: the model in its SageMaker layout, uncompressed (:mod:`exporters._sagemaker_layout`), which
  ``artifact-tools serve`` loads (a PyTorch model is kept as TorchScript ``model.pt`` only);
- ``entrypoint.sh``: ``serve`` (SageMaker runs the image as ``<image> serve``) starts ``artifact-tools serve`` on
  ``model/`` with the SageMaker contract (``GET /ping``, ``POST /invocations``) on ``$SAGEMAKER_BIND_TO_PORT``
  (default 8080); with ``SERVER=tf-serving`` a TensorFlow model is served by ``tensorflow_model_server`` instead.
  It runs from a checkout as well as in the image (paths are relative to the script; ``$PYTHON`` picks the
  interpreter);
- ``Dockerfile``, ``ecs-task-definition.json`` (Fargate, ``awsvpc``), ``k8s.yaml`` (a Deployment with ``/ping``
  probes and a Service), ``README.md``, ``verification.json``;
- ``.gitattributes`` with ``filter=lfs diff=lfs merge=lfs -text`` lines for model files larger than
  ``lfs_threshold`` bytes (default 50 MiB). When the ``git-lfs`` program is missing the attributes are still
  written, the files are committed as ordinary blobs, and the result says so.

A new repository is built in a temp sibling, verified, committed, pushed (``remote=``: any URL ``git push``
takes, a local bare repository included) and only then moved to ``out``. The branch is ``branch=``, else the one
the remote's ``HEAD`` names, so that ``git clone`` checks the export out: ``git ls-remote --symref`` shows it for
a remote with commits; an empty remote's ``HEAD`` is unborn and ls-remote lists nothing, so it is read from a
bare clone, which takes the remote's unborn ``HEAD`` over protocol v2 (git 2.31+, ``ls-refs`` ``unborn`` in git's
``Documentation/technical/protocol-v2.txt``). Without a remote the branch is ``main``; an existing repository keeps
its current branch. An existing repository at ``out`` is updated instead: the new tree is committed in a temp
clone, verified, pushed, and ``out`` fast-forwarded to it (its work tree must be clean). Verification runs
``entrypoint.sh`` from the repository on 127.0.0.1 and compares the answers of ``POST /invocations`` with the
source model's predictions; without a sample given or buildable it is skipped and ``verification.json`` says why.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifact_tools.errors import ArtifactError
from loaders.base import LoadedModel

from ._atomic import clean_stale, refuse_existing, staged, temp_path
from ._common import (
    Check,
    ExportOptions,
    ExportResult,
    check,
    require_sample_for_build,
    target_options,
    verification_sample,
)
from ._sagemaker_layout import BUILDERS, build_layout, csv_body, json_body, sample_count, source_predictions
from ._tar import write_contents

__all__ = ["DEFAULT_LFS_THRESHOLD", "GitOptions", "OPTIONS", "export"]

DEFAULT_LFS_THRESHOLD = 50 << 20
DEFAULT_BRANCH = "main"


@dataclass(frozen=True)
class GitOptions(ExportOptions):
    """``remote`` (URL or path of the repository to push to), ``branch`` (default: the branch the remote's HEAD
    names, else ``main``; an existing repository's current branch), ``name`` (container/service name),
    ``message`` (commit message), ``lfs_threshold`` (bytes above which a model file goes to Git LFS)."""

    remote: str | None = None
    branch: str | None = None
    name: str = "model"
    message: str | None = None
    lfs_threshold: int = DEFAULT_LFS_THRESHOLD


OPTIONS = GitOptions
EXTRAS = {"sklearn": "sklearn", "xgboost": "xgboost", "tensorflow": "tensorflow", "pytorch": "pytorch",
          "huggingface": "huggingface", "mxnet": "mxnet"}
PROJECT_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 120


def export(loaded: LoadedModel, out: Path, *, force: bool = False, **options: Any) -> ExportResult:
    """Write or update the Git repository ``out`` for ``loaded``; commit, push to ``remote`` when given, verify
    (options: :class:`GitOptions`)."""
    opts = target_options(GitOptions, options, "git")
    out = Path(out)
    rtol, atol, remote, branch, name = opts.rtol, opts.atol, opts.remote, opts.branch, opts.name
    message, threshold = opts.message, opts.lfs_threshold
    if loaded.framework not in BUILDERS:
        raise ArtifactError(f"the git target serves {', '.join(sorted(BUILDERS))} models, not "
                            f"{loaded.framework} models")
    samples, missing = verification_sample(loaded, opts.sample)
    if samples is None:
        require_sample_for_build(loaded, "git", missing)
    expected = source_predictions(loaded, samples) if samples is not None else None
    update = (out / ".git").is_dir() and not force
    remote_head = _remote_head(remote) if remote else None
    if not update:
        refuse_existing(out, force)
    result = ExportResult("git", loaded.framework, out, samples=sample_count(samples) if samples is not None else 0)
    if samples is None:
        result.unverified = (f"{missing}, so the served answers were not compared with the source model's "
                             "predictions")
    if update:
        _require_clean(out)
        clean_stale(out)
        branch = branch or _current_branch(out) or remote_head or DEFAULT_BRANCH
        tmp = temp_path(out)
        shutil.rmtree(tmp, ignore_errors=True)
        _git(["clone", "--quiet", "--branch", branch, str(out), str(tmp)], Path.cwd())
        try:
            _fill(tmp, loaded, samples, expected, name, threshold, message, remote, branch, result, rtol, atol,
                  remote_head)
            _git(["fetch", "--quiet", str(tmp), branch], out)
            _git(["merge", "--quiet", "--ff-only", "FETCH_HEAD"], out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return result
    branch = branch or remote_head or DEFAULT_BRANCH
    with staged(out, force) as tmp:
        _git(["init", "--quiet", "--initial-branch", branch], tmp)
        _fill(tmp, loaded, samples, expected, name, threshold, message, remote, branch, result, rtol, atol,
              remote_head)
    return result


def _fill(repo: Path, loaded: LoadedModel, samples: Any, expected: Any, name: str, threshold: int,
          message: str | None, remote: str | None, branch: str, result: ExportResult, rtol: float, atol: float,
          remote_head: str | None = None):
    """Write the tree into the work tree ``repo``, verify it, commit and push."""
    model_dir = repo / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    work = repo / ".git" / "artifact-tools-work"  # inside the temp repository's .git: never committed
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        layout = build_layout(loaded, samples, expected, rtol, atol, work)
        if loaded.framework == "pytorch":
            layout.source = None  # the TorchScript file alone: the original weights would be a second model
        write_contents(layout, model_dir, archive=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    trust = loaded.framework == "pytorch"  # model.pt is TorchScript this exporter wrote itself
    source = loaded.report.source if loaded.report is not None else f"a {type(loaded.model).__name__} object"
    files = _write_files(repo, loaded.framework, name, trust, source)
    large = [p.relative_to(repo).as_posix() for p in sorted(model_dir.rglob("*")) if p.is_file()
             and p.stat().st_size > threshold]
    lfs = shutil.which("git-lfs") is not None
    if large:
        (repo / ".gitattributes").write_text("".join(f"{path} filter=lfs diff=lfs merge=lfs -text\n" for path in large))
        files.append(".gitattributes")
        if lfs:
            _git(["lfs", "install", "--local"], repo)
            result.notes.append(f"{len(large)} file(s) over {threshold} bytes are stored with Git LFS")
        else:
            result.notes.append(f"git-lfs is not installed: .gitattributes marks {', '.join(large)} for LFS, but "
                                "they were committed as ordinary Git objects; install git-lfs and run "
                                "`git lfs migrate import --everything --include=<those paths>` to move them")
    result.facts.update({"git_lfs": "yes" if lfs else "no", "lfs_files": large, "branch": branch})
    if samples is not None:
        result.checks = _serve_checks(repo, samples, expected, rtol, atol)
    result.require_passed()
    result.files = sorted(files + ["model/", "verification.json"])
    result.write(repo)
    _git(["add", "--all"], repo)
    verified = (f"Verified: POST /invocations answers match the source predictions on {result.samples} sample "
                "input(s)." if result.checks else f"Not verified: {result.unverified}.")
    text = message or (f"Export {loaded.framework} model for container serving\n\n"
                       f"Source: {source}\n{verified}\nWritten by artifact-tools.")
    _git(["commit", "--quiet", "--allow-empty", "-m", text], repo)
    result.facts["commit"] = _git(["rev-parse", "HEAD"], repo).strip()
    if remote:
        _git(["push", "--quiet", str(remote), f"HEAD:refs/heads/{branch}"], repo)
        result.facts["pushed_to"] = str(remote)
        if remote_head is not None and remote_head != branch:
            result.notes.append(f"the remote's HEAD names {remote_head}, not {branch}: clone it with "
                                f"`git clone --branch {branch}`")


def _current_branch(repo: Path) -> str | None:
    """The branch ``repo``'s HEAD names, or None when HEAD is detached."""
    try:
        return _git(["symbolic-ref", "--quiet", "--short", "HEAD"], repo).strip() or None
    except ArtifactError:
        return None


def _remote_head(remote: str) -> str | None:
    """The branch the remote's HEAD names (see the module notes), or None when it names none."""
    listed = _git(["ls-remote", "--symref", str(remote), "HEAD"], Path.cwd())
    for line in listed.splitlines():
        ref, _, name = line.partition("\t")
        if ref.startswith("ref: refs/heads/") and name.strip() == "HEAD":
            return ref[len("ref: refs/heads/"):].strip()
    if listed.strip() or _git(["ls-remote", "--heads", str(remote)], Path.cwd()).strip():
        return None  # a remote with commits whose HEAD is detached or not advertised
    with tempfile.TemporaryDirectory(prefix="artifact-tools-remote-") as tmp:
        probe = Path(tmp) / "probe.git"
        _git(["-c", "protocol.version=2", "-c", f"init.defaultBranch={DEFAULT_BRANCH}", "clone", "--quiet", "--bare",
              str(remote), str(probe)], Path(tmp))  # the default applies only when the server hides its HEAD
        return _current_branch(probe)


def _require_clean(repo: Path) -> None:
    status = _git(["status", "--porcelain"], repo)
    if status.strip():
        raise ArtifactError(f"the Git repository {repo} has uncommitted changes; commit or discard them first")


def _git(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    for var, value in (("GIT_AUTHOR_NAME", "artifact-tools"), ("GIT_AUTHOR_EMAIL", "artifact-tools@localhost"),
                       ("GIT_COMMITTER_NAME", "artifact-tools"), ("GIT_COMMITTER_EMAIL", "artifact-tools@localhost")):
        env.setdefault(var, value)
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise ArtifactError(f"git {args[0]} failed: {detail[-1] if detail else f'exit status {proc.returncode}'}")
    return proc.stdout


# ------------------------------------------------------------------------------------------------ files

_ENTRYPOINT = """#!/bin/sh
# Serve ./model with the SageMaker container contract (GET /ping, POST /invocations).
# Image: docker run -p 8080:8080 IMAGE   (SageMaker runs `IMAGE serve`). Checkout: ./entrypoint.sh serve
# Environment: SAGEMAKER_BIND_TO_PORT (8080), HOST (0.0.0.0), WORKERS (1), PYTHON (python3), MODEL_DIR (./model),
# SERVER (artifact-tools, or tf-serving for a TensorFlow model when tensorflow_model_server is installed).
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
MODEL_DIR="${{MODEL_DIR:-$HERE/model}}"
PORT="${{SAGEMAKER_BIND_TO_PORT:-8080}}"
if [ "${{1:-serve}}" = "serve" ] && [ $# -gt 0 ]; then shift; fi
if [ "${{SERVER:-artifact-tools}}" = "tf-serving" ]; then
    exec tensorflow_model_server --rest_api_port="$PORT" --model_name={name} --model_base_path="$MODEL_DIR" "$@"
fi
exec "${{PYTHON:-python3}}" -m artifact_tools serve "$MODEL_DIR" --host "${{HOST:-0.0.0.0}}" --port "$PORT" \\
    --workers "${{WORKERS:-1}}"{trust} "$@"
"""

_DOCKERFILE = """FROM python:3.11-slim
# artifact-tools with the serving extra and the {framework} extra (the framework that loads the model).
RUN pip install --no-cache-dir "artifact-tools[serve,{extra}]"
WORKDIR /opt/program
COPY model ./model
COPY entrypoint.sh ./entrypoint.sh
ENV SAGEMAKER_BIND_TO_PORT=8080 PYTHONUNBUFFERED=1
EXPOSE 8080
ENTRYPOINT ["/opt/program/entrypoint.sh"]
CMD ["serve"]
"""

_K8S = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
        - name: {name}
          image: {image}
          args: ["serve"]
          ports:
            - containerPort: 8080
          env:
            - name: SAGEMAKER_BIND_TO_PORT
              value: "8080"
          readinessProbe:
            httpGet:
              path: /ping
              port: 8080
            periodSeconds: 10
          livenessProbe:
            httpGet:
              path: /ping
              port: 8080
            initialDelaySeconds: 60
            periodSeconds: 30
          resources:
            requests:
              cpu: "1"
              memory: 2Gi
            limits:
              memory: 4Gi
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector:
    app: {name}
  ports:
    - name: http
      port: 80
      targetPort: 8080
"""

_README = """# {name}: a {framework} model served over HTTP

Written by artifact-tools from `{source}`.

- `model/`: the model (SageMaker {framework} layout, uncompressed)
- `entrypoint.sh`: starts the server (`GET /ping`, `POST /invocations`, port `$SAGEMAKER_BIND_TO_PORT`, 8080)
- `Dockerfile`: `docker build -t {name} . && docker run -p 8080:8080 {name}`
- `ecs-task-definition.json`: `aws ecs register-task-definition --cli-input-json file://ecs-task-definition.json`
  (replace `<account>`, `<region>` and the execution role first)
- `k8s.yaml`: `kubectl apply -f k8s.yaml` (a Deployment probing `/ping` and a Service on port 80)
- `verification.json`: the checks run before this commit

Try it without Docker:

```sh
HOST=127.0.0.1 ./entrypoint.sh serve &
curl -s -H 'Content-Type: text/csv' --data-binary @rows.csv http://127.0.0.1:8080/invocations
```
"""


def _write_files(repo: Path, framework: str, name: str, trust: bool, source: str) -> list[str]:
    image = f"<account>.dkr.ecr.<region>.amazonaws.com/{name}:latest"
    entry = repo / "entrypoint.sh"
    entry.write_text(_ENTRYPOINT.format(name=name, trust=" --trust" if trust else ""))
    entry.chmod(0o755)
    (repo / "Dockerfile").write_text(_DOCKERFILE.format(framework=framework, extra=EXTRAS.get(framework, framework)))
    (repo / "k8s.yaml").write_text(_K8S.format(name=name, image=image))
    task = {
        "family": name, "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "1024",
        "memory": "4096", "executionRoleArn": "arn:aws:iam::<account>:role/ecsTaskExecutionRole",
        "containerDefinitions": [{
            "name": name, "image": image, "essential": True, "command": ["serve"],
            "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
            "environment": [{"name": "SAGEMAKER_BIND_TO_PORT", "value": "8080"}],
            "healthCheck": {"command": ["CMD-SHELL", "python3 -c \"import urllib.request; "
                                        "urllib.request.urlopen('http://127.0.0.1:8080/ping')\""],
                            "interval": 30, "timeout": 5, "retries": 3, "startPeriod": 60},
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": f"/ecs/{name}", "awslogs-region": "<region>", "awslogs-stream-prefix": name}},
        }],
    }
    (repo / "ecs-task-definition.json").write_text(json.dumps(task, indent=2) + "\n")
    (repo / "README.md").write_text(_README.format(name=name, framework=framework, source=source))
    return ["entrypoint.sh", "Dockerfile", "k8s.yaml", "ecs-task-definition.json", "README.md"]


# ------------------------------------------------------------------------------------------------ verification

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_entrypoint(repo: Path, port: int) -> subprocess.Popen:
    """Run ``entrypoint.sh serve`` from ``repo`` on 127.0.0.1:``port`` with this interpreter and project."""
    env = {**os.environ, "HOST": "127.0.0.1", "SAGEMAKER_BIND_TO_PORT": str(port), "WORKERS": "1",
           "PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.Popen([str(repo / "entrypoint.sh"), "serve"], cwd=repo, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(proc: subprocess.Popen, port: int, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stdout.read().decode(errors="replace").strip().splitlines() if proc.stdout else []
            raise ArtifactError(f"entrypoint.sh exited with status {proc.returncode}: "
                                f"{output[-1] if output else 'no output'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise ArtifactError(f"entrypoint.sh did not answer /ping within {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (gunicorn stops gracefully), SIGKILL after 30 s."""
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.stdout:
        proc.stdout.close()


def invoke(port: int, body: bytes, content_type: str) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, method="POST",
                                     headers={"Content-Type": content_type, "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.loads(r.read())


def request_bodies(samples: Any) -> list[tuple[str, bytes]]:
    """``text/csv`` and ``application/json`` bodies for numeric rows; JSON ``{"inputs": texts}`` for texts."""
    if isinstance(samples, list) and samples and isinstance(samples[0], str):
        return [("application/json", json.dumps({"inputs": samples}).encode())]
    return [("text/csv", csv_body(samples)), ("application/json", json_body(samples))]


def _serve_checks(repo: Path, samples: Any, expected: Any, rtol: float, atol: float) -> list[Check]:
    port = free_port()
    proc = start_entrypoint(repo, port)
    checks = []
    try:
        wait_ready(proc, port)
        for content_type, body in request_bodies(samples):
            got = invoke(port, body, content_type)
            if isinstance(got, dict) and len(got) == 1 and set(got) <= {"predictions", "outputs"}:
                got = next(iter(got.values()))  # the TF Serving style wrapping of an {"instances": ...} request
            if hasattr(expected, "columns"):
                import pandas as pd

                got = pd.DataFrame(got)
            checks.append(check(f"POST /invocations ({content_type})", expected, got, rtol, atol,
                                "entrypoint.sh serve run from the repository on 127.0.0.1"))
    except ArtifactError as e:
        checks.append(Check("entrypoint.sh serve", False, str(e)))
    finally:
        stop(proc)
    return checks
