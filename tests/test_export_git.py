"""Git container export: commit + push to a bare remote, then serve from a fresh clone of it.

The clone's ``entrypoint.sh`` is run directly (no Docker engine here) on 127.0.0.1 and its ``/invocations``
answers are compared with predictions of the source model computed in the test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import exporters
import loaders
from artifact_tools.errors import ArtifactError
from exporters import git_container
from exporters.sagemaker import csv_body

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import make_samples  # noqa: E402

pytest.importorskip("gunicorn")


def _git(*args, cwd=None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _serve_from_clone(remote: Path, dest: Path, rows: np.ndarray) -> np.ndarray:
    _git("clone", "--quiet", str(remote), str(dest))  # the branch the remote's HEAD names
    port = git_container.free_port()
    proc = git_container.start_entrypoint(dest, port)
    try:
        git_container.wait_ready(proc, port)
        return np.asarray(git_container.invoke(port, csv_body(rows), "text/csv"))
    finally:
        git_container.stop(proc)


def test_sklearn_artifact_pushed_then_served_from_a_clone(tmp_path):
    art = make_samples.build_sklearn(tmp_path)
    remote = tmp_path / "remote.git"
    _git("init", "--quiet", "--bare", "--initial-branch", "main", str(remote))
    result = exporters.export(art, "git", tmp_path / "repo", remote=str(remote), lfs_threshold=100, name="iris")
    assert result.passed and {c.name for c in result.checks} == {"POST /invocations (text/csv)",
                                                                 "POST /invocations (application/json)"}
    assert result.facts["commit"] == _git("rev-parse", "main", cwd=remote).strip()
    assert "Export sklearn model" in _git("log", "-1", "--format=%B", "main", cwd=remote)

    clone = tmp_path / "clone"
    rows = np.random.default_rng(0).normal(size=(8, 4))
    got = _serve_from_clone(remote, clone, rows)
    np.testing.assert_array_equal(got, loaders.load(art).model.predict(rows))

    for name in ("Dockerfile", "README.md", "entrypoint.sh", "verification.json", "model/model.joblib"):
        assert (clone / name).is_file(), name
    assert 'ENTRYPOINT ["/opt/program/entrypoint.sh"]' in (clone / "Dockerfile").read_text()
    yaml = pytest.importorskip("yaml")
    deployment, service = yaml.safe_load_all((clone / "k8s.yaml").read_text())
    assert deployment["kind"] == "Deployment" and service["kind"] == "Service"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ping", "port": 8080}
    assert service["spec"]["ports"][0]["targetPort"] == 8080
    task = json.loads((clone / "ecs-task-definition.json").read_text())
    assert task["requiresCompatibilities"] == ["FARGATE"] and task["networkMode"] == "awsvpc"
    assert task["containerDefinitions"][0]["portMappings"][0]["containerPort"] == 8080
    attributes = (clone / ".gitattributes").read_text().splitlines()
    assert "model/model.joblib filter=lfs diff=lfs merge=lfs -text" in attributes
    if shutil.which("git-lfs") is None:
        assert any("git-lfs is not installed" in n for n in result.notes)


def test_update_adds_a_commit_and_refuses_a_dirty_repository(tmp_path):
    import xgboost as xgb

    X, y = make_samples.make_data()
    remote = tmp_path / "remote.git"
    _git("init", "--quiet", "--bare", "--initial-branch", "main", str(remote))
    repo = tmp_path / "repo"
    first = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(X, label=y), 3)
    exporters.export(first, "git", repo, remote=str(remote))
    second = xgb.train({"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(X, label=y), 6)
    result = exporters.export(second, "git", repo, remote=str(remote), message="Retrained with depth 3")
    assert result.passed
    assert _git("log", "--format=%s", "main", cwd=remote).splitlines() == [
        "Retrained with depth 3", "Export xgboost model for container serving"]
    assert _git("rev-parse", "HEAD", cwd=repo) == _git("rev-parse", "main", cwd=remote)

    got = _serve_from_clone(remote, tmp_path / "clone", X[:6])
    np.testing.assert_allclose(got, second.predict(xgb.DMatrix(X[:6])), rtol=1e-6)

    (repo / "README.md").write_text("local edit")
    with pytest.raises(ArtifactError, match="uncommitted changes"):
        exporters.export(second, "git", repo)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clone", "remote.git", "repo"]


@pytest.mark.parametrize("head", ["master", "main", "trunk"])
def test_push_goes_to_the_branch_a_new_bare_remotes_head_names(tmp_path, head):
    import xgboost as xgb

    X, y = make_samples.make_data()
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(X, label=y), 2)
    remote = tmp_path / "remote.git"
    _git("init", "--quiet", "--bare", "--initial-branch", head, str(remote))
    assert (remote / "HEAD").read_text().strip() == f"ref: refs/heads/{head}"
    result = exporters.export(booster, "git", tmp_path / "repo", remote=str(remote))
    assert result.passed and result.facts["branch"] == head
    assert _git("for-each-ref", "--format=%(refname)", cwd=remote).split() == [f"refs/heads/{head}"]
    assert _git("symbolic-ref", "--short", "HEAD", cwd=tmp_path / "repo").strip() == head

    clone = tmp_path / "clone"
    _git("clone", "--quiet", str(remote), str(clone))  # a plain clone, as a user runs it
    for name in ("Dockerfile", "entrypoint.sh", "verification.json", "model/xgboost-model"):
        assert (clone / name).is_file(), name
    assert _git("rev-parse", "HEAD", cwd=clone).strip() == result.facts["commit"]

    # an update follows the repository's branch, and a remote that has commits names it through ls-remote
    again = exporters.export(booster, "git", tmp_path / "repo", remote=str(remote), message="again")
    assert again.facts["branch"] == head
    assert _git("log", "-1", "--format=%s", head, cwd=remote).strip() == "again"


def test_explicit_branch_other_than_the_remote_head_is_noted(tmp_path):
    import xgboost as xgb

    X, y = make_samples.make_data()
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(X, label=y), 2)
    remote = tmp_path / "remote.git"
    _git("init", "--quiet", "--bare", "--initial-branch", "master", str(remote))
    result = exporters.export(booster, "git", tmp_path / "repo", remote=str(remote), branch="release")
    assert _git("for-each-ref", "--format=%(refname)", cwd=remote).split() == ["refs/heads/release"]
    assert any("git clone --branch release" in n for n in result.notes)
    clone = tmp_path / "clone"
    _git("clone", "--quiet", "--branch", "release", str(remote), str(clone))
    assert (clone / "model" / "xgboost-model").is_file()


def test_unreachable_remote_is_one_sentence(tmp_path):
    import xgboost as xgb

    X, y = make_samples.make_data()
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(X, label=y), 1)
    with pytest.raises(ArtifactError, match="git ls-remote failed"):
        exporters.export(booster, "git", tmp_path / "repo", remote=str(tmp_path / "missing.git"))
    assert not (tmp_path / "repo").exists()
