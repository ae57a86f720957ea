"""Build the models and inputs the batch transform tests and benchmark use.

    python scripts/make_transform_fixtures.py OUT_DIR

Models (SageMaker scikit-learn / XGBoost layouts, from ``make_samples.py``'s helpers): ``scaler.tar.gz``
(StandardScaler: its ``transform`` is what the loader predicts), ``pca.tar.gz`` (PCA to 3 components of the scaled
data), ``logreg3.tar.gz`` (LogisticRegression on those 3 components), ``xgb-scaled.tar.gz`` (XGBoost on the
scaled data): the stages of two- and three-model inference pipelines. Inputs: :func:`write_csv` writes rows as
CSV with numpy's own ``savetxt``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_samples import make_data, tar_folder  # noqa: E402


def build_joblib(estimator, out: Path) -> Path:
    """A SageMaker scikit-learn model.tar.gz holding ``model.joblib`` (no inference script)."""
    import joblib

    with tempfile.TemporaryDirectory() as d:
        joblib.dump(estimator, Path(d) / "model.joblib")
        return tar_folder(Path(d), out)


def build_xgboost(X, y, out: Path, rounds: int = 10) -> Path:
    """The XGBoost built-in algorithm layout (one UBJSON ``xgboost-model`` file) trained on ``X, y``."""
    import xgboost as xgb

    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.3}, xgb.DMatrix(X, label=y),
                        rounds)
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "xgboost-model").write_bytes(bytes(booster.save_raw("ubj")))
        return tar_folder(Path(d), out)


def build_pipeline_models(out_dir: Path) -> dict:
    """The pipeline stages named in the module docstring, ``{name: path}``."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X, y = make_data(n=400)
    X = X * np.array([1.0, 10.0, 100.0, 0.1], dtype=np.float32) + 5  # so that scaling changes the numbers
    scaler = StandardScaler().fit(X)
    Xs = scaler.transform(X)
    pca = PCA(n_components=3, random_state=0).fit(Xs)
    logreg = LogisticRegression(max_iter=300).fit(pca.transform(Xs), y)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {"scaler": build_joblib(scaler, out_dir / "scaler.tar.gz"),
            "pca": build_joblib(pca, out_dir / "pca.tar.gz"),
            "logreg3": build_joblib(logreg, out_dir / "logreg3.tar.gz"),
            "xgb-scaled": build_xgboost(Xs, y, out_dir / "xgb-scaled.tar.gz"),
            "raw-x": X}


def write_csv(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.asarray(rows), delimiter=",", fmt="%.9g")
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    built = build_pipeline_models(Path(argv[0]))
    for name, path in built.items():
        if name != "raw-x":
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
