"""Build a fleet of SageMaker model artifacts to migrate (``artifact-tools migrate``): the tests' fleet and the
benchmark's many small models.

``build_fleet(root, corpus)`` writes ``root/fleet/`` (what SOURCE points at) and ``root/s3/`` (a local mirror of
a bucket that the model descriptions' ``ModelDataUrl`` point into, relative to the description file):

==================================  ==========================================================================
``fleet/sklearn/model.tar.gz``      scikit-learn container layout: ``model.joblib`` (LogisticRegression, iris)
``fleet/sklearn-loose.joblib``      a loose joblib file (RandomForestClassifier)
``fleet/xgboost-current/...``       ``xgboost-model`` written by the installed XGBoost (UBJSON)
``fleet/xgboost-current-json/...``  the same in JSON
``fleet/xgboost-<era>/...``         one ``model.tar.gz`` per legacy XGBoost era, from the files the old XGBoost
                                    builds wrote (``tests/data/xgboost_legacy``, by
                                    ``scripts/make_xgboost_legacy_fixtures.py``), and the corpus' 0.90-era Python 3
                                    pickle (``cookbook-xgboost-1``) when the corpus is there
``fleet/mxnet-linear-learner/...``  the corpus' Linear Learner built-in (``cookbook-ll``), when the corpus is there
``fleet/descriptions/*.json``       a ``DescribeModel`` response of one XGBoost container, and one of an
                                    inference pipeline (a scikit-learn standardizing model, then XGBoost)
``fleet/hostile/model.tar.gz``      ``model.joblib`` is a pickle calling ``os.system`` (as scripts/make_hostile.py
                                    writes them): the audit must refuse it
``fleet/broken/model.tar.gz``       a ``model.tar.gz`` cut in the middle of its gzip stream
==================================  ==========================================================================

It returns ``{model id: expected outcome}`` (ids as the migration names them). ``build_small(folder, n)`` writes
``n`` small scikit-learn / XGBoost ``model.tar.gz`` files for the benchmark.

Usage: ``python scripts/make_fleet.py OUT [--corpus DIR] [--small N]``.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEGACY = ROOT / "tests" / "data" / "xgboost_legacy"
# one file per era the legacy XGBoost builds wrote (tests/data/xgboost_legacy/manifest.json names the era)
# (files saved without feature names: SageMaker's built-in XGBoost trains on CSV/libsvm columns; the Python 3
# pickle of the 0.90 container is the corpus' cookbook-xgboost-1)
LEGACY_FILES = {
    "legacy-binary-090": "x090-reg-linear.model",
    "legacy-binary-176": "x176-reg-squarederror.model",
    "py2-pickle-p0": "x090py2-multi-softprob.p2.pkl",
    "py2-pickle-p2": "x090-multi-softprob.p2.pkl",
    "pickle-1x-snapshot-121": "x121-multi-softprob.p4.pkl",
    "pickle-1x-snapshot-142": "x142-multi-softprob.p4.pkl",
    "pickle-1x-snapshot-176": "x176-reg-squarederror.p3.pkl",
}
REGION_ACCOUNT = "683313688378.dkr.ecr.us-east-1.amazonaws.com"


def tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def joblib_bytes(obj) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(obj, buf)
    return buf.getvalue()


def sklearn_models(seed: int = 0):
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    return (LogisticRegression(max_iter=500).fit(X, y),
            RandomForestClassifier(n_estimators=5, max_depth=3, random_state=seed).fit(X, y))


def xgboost_bytes(seed: int = 0, rounds: int = 5, features: int = 4, fmt: str = "ubj") -> bytes:
    """The UBJSON (or JSON) bytes of a small binary:logistic Booster written by the installed XGBoost."""
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, features))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "seed": seed}, xgb.DMatrix(X, label=y),
                        rounds)
    return bytes(booster.save_raw(fmt))


def hostile_pickle() -> bytes:
    """A protocol-2 pickle whose load calls ``os.system(...)`` (scripts/make_hostile.py's opcode helpers)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import make_hostile as mh

    return mh.whole_pickle(mh.p_call(mh.p_global("os", "system"), mh.p_str("echo migrated-hostile > /dev/null")))


def crashing_tree() -> bytes:
    """joblib bytes of a DecisionTreeClassifier whose node arrays point far outside themselves: it names only
    allowlisted scikit-learn types, so the audit passes it, and scikit-learn indexes the nodes without bounds
    checks, so predicting with it crashes the process (SIGSEGV) -- what a migration worker must survive."""
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_iris(return_X_y=True)
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    state = model.tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][:] = 2 ** 40
    nodes["right_child"][:] = 2 ** 40
    state["nodes"] = nodes
    model.tree_.__setstate__(state)
    return joblib_bytes(model)


def description(name: str, containers: list[dict], pipeline: bool) -> dict:
    """A DescribeModel response (API_DescribeModel: ModelName, PrimaryContainer or Containers, ...)."""
    doc = {"ModelName": name, "ModelArn": f"arn:aws:sagemaker:us-east-1:111122223333:model/{name}",
           "ExecutionRoleArn": "arn:aws:iam::111122223333:role/SageMakerRole",
           "CreationTime": "2021-03-04T10:20:30.000Z", "EnableNetworkIsolation": False}
    if pipeline:
        doc["Containers"] = containers
        doc["InferenceExecutionConfig"] = {"Mode": "Serial"}
    else:
        doc["PrimaryContainer"] = containers[0]
    return doc


def build_fleet(root: Path, corpus: Path | None = None) -> dict[str, str]:
    """Write the tests' fleet under ``root`` (see the module notes); ``{model id: expected outcome}``."""
    from sklearn.linear_model import LinearRegression
    from sklearn.preprocessing import StandardScaler

    fleet, s3 = root / "fleet", root / "s3"
    expected: dict[str, str] = {}
    lr, rf = sklearn_models()
    tar_gz(fleet / "sklearn" / "model.tar.gz", {"model.joblib": joblib_bytes(lr)})
    expected["sklearn/model.tar.gz"] = "migrated"
    (fleet / "sklearn-loose.joblib").write_bytes(joblib_bytes(rf))
    expected["sklearn-loose.joblib"] = "migrated"
    tar_gz(fleet / "xgboost-current" / "model.tar.gz", {"xgboost-model": xgboost_bytes(1)})
    expected["xgboost-current/model.tar.gz"] = "migrated"
    tar_gz(fleet / "xgboost-current-json" / "model.tar.gz", {"xgboost-model": xgboost_bytes(5, fmt="json")})
    expected["xgboost-current-json/model.tar.gz"] = "migrated"
    for era, name in LEGACY_FILES.items():
        tar_gz(fleet / f"xgboost-{era}" / "model.tar.gz", {"xgboost-model": (LEGACY / name).read_bytes()})
        expected[f"xgboost-{era}/model.tar.gz"] = "migrated"
    if corpus is not None and (corpus / "cookbook-ll" / "model.tar.gz").is_file():
        (fleet / "mxnet-linear-learner").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus / "cookbook-ll" / "model.tar.gz", fleet / "mxnet-linear-learner" / "model.tar.gz")
        expected["mxnet-linear-learner/model.tar.gz"] = "loadable"  # its export depends on the target
    if corpus is not None and (corpus / "cookbook-xgboost-1" / "model.tar.gz").is_file():
        (fleet / "xgboost-py3-pickle-legacy-binary").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus / "cookbook-xgboost-1" / "model.tar.gz",
                        fleet / "xgboost-py3-pickle-legacy-binary" / "model.tar.gz")
        expected["xgboost-py3-pickle-legacy-binary/model.tar.gz"] = "migrated"
    tar_gz(fleet / "hostile" / "model.tar.gz", {"model.joblib": hostile_pickle()})
    expected["hostile/model.tar.gz"] = "refused"
    whole = (tar_gz(root / "whole.tar.gz", {"model.joblib": joblib_bytes(rf)})).read_bytes()
    (fleet / "broken").mkdir(parents=True, exist_ok=True)
    (fleet / "broken" / "model.tar.gz").write_bytes(whole[: len(whole) // 2])
    (root / "whole.tar.gz").unlink()
    expected["broken/model.tar.gz"] = "failed"

    # the bucket the descriptions point into (outside the fleet folder, as S3 is)
    tar_gz(s3 / "churn" / "output" / "model.tar.gz", {"xgboost-model": xgboost_bytes(2)})
    import numpy as np

    # a learned preprocessing step: 4 columns in, the 4 standardized columns out (a model with predict, as the
    # scikit-learn container's default predict_fn calls), then the XGBoost model on those 4 columns
    raw = np.random.default_rng(3).normal(loc=5.0, scale=2.0, size=(60, 4))
    scaled = StandardScaler().fit_transform(raw)
    tar_gz(s3 / "pipeline" / "preprocess" / "model.tar.gz",
           {"model.joblib": joblib_bytes(LinearRegression().fit(raw, scaled))})
    tar_gz(s3 / "pipeline" / "xgboost" / "model.tar.gz", {"xgboost-model": xgboost_bytes(4)})
    desc = fleet / "descriptions"
    desc.mkdir(parents=True, exist_ok=True)
    up = "../../s3"  # ModelDataUrl relative to the description file: the local mirror of the bucket
    single = description("churn-xgb", [{
        "Image": f"{REGION_ACCOUNT}/sagemaker-xgboost:1.7-1", "Mode": "SingleModel",
        "ModelDataUrl": f"{up}/churn/output/model.tar.gz", "Environment": {"SAGEMAKER_CONTAINER_LOG_LEVEL": "20"}}],
        pipeline=False)
    (desc / "churn-xgb.json").write_text(json.dumps(single, indent=2))
    expected["descriptions/churn-xgb.json#churn-xgb"] = "migrated"
    pipe = description("scaler-then-xgb", [
        {"ContainerHostname": "preprocess", "Image": f"{REGION_ACCOUNT}/sagemaker-scikit-learn:1.2-1-cpu-py3",
         "ModelDataUrl": f"{up}/pipeline/preprocess/model.tar.gz",
         "Environment": {"SAGEMAKER_PROGRAM": "preprocess.py", "SAGEMAKER_SUBMIT_DIRECTORY":
                         "s3://bucket/pipeline/sourcedir.tar.gz", "SAGEMAKER_REGION": "us-east-1"}},
        {"ContainerHostname": "model", "Image": f"{REGION_ACCOUNT}/sagemaker-xgboost:1.7-1",
         "ModelDataUrl": f"{up}/pipeline/xgboost/model.tar.gz", "Environment": {}}], pipeline=True)
    (desc / "scaler-then-xgb.json").write_text(json.dumps(pipe, indent=2))
    expected["descriptions/scaler-then-xgb.json#scaler-then-xgb"] = "migrated"
    return expected


def build_small(folder: Path, n: int) -> list[Path]:
    """``n`` small ``model.tar.gz`` files, alternately scikit-learn (joblib) and XGBoost (UBJSON)."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_iris(return_X_y=True)
    out = []
    for i in range(n):
        if i % 2 == 0:
            model = (LogisticRegression(max_iter=300, C=1.0 + i) if i % 4 == 0 else
                     DecisionTreeClassifier(max_depth=3, random_state=i)).fit(X, y)
            out.append(tar_gz(folder / f"m{i:04d}-sklearn" / "model.tar.gz", {"model.joblib": joblib_bytes(model)}))
        else:
            out.append(tar_gz(folder / f"m{i:04d}-xgboost" / "model.tar.gz", {"xgboost-model": xgboost_bytes(i)}))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    p.add_argument("--small", type=int, default=0, help="write N small models instead of the tests' fleet")
    args = p.parse_args()
    if args.small:
        build_small(args.out, args.small)
    else:
        print(json.dumps(build_fleet(args.out, args.corpus if args.corpus.is_dir() else None), indent=2))


if __name__ == "__main__":
    main()
