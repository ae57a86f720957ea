"""Build the models and inputs the batch transform tests and benchmark use.

    python scripts/make_transform_fixtures.py OUT_DIR

Models (SageMaker scikit-learn / XGBoost layouts, from ``make_samples.py``'s helpers): ``scaler.tar.gz``
(StandardScaler: its ``transform`` is what the loader predicts), ``pca.tar.gz`` (PCA to 3 components of the scaled
data), ``logreg3.tar.gz`` (LogisticRegression on those 3 components), ``xgb-scaled.tar.gz`` (XGBoost on the
scaled data): the stages of two- and three-model inference pipelines. Inputs: :func:`write_csv` writes rows as
CSV with numpy's own ``savetxt``. The benchmark's larger models and rows: :func:`build_bench_models`,
:func:`bench_data`.
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


BENCH_FEATURES = 20


def bench_data(n: int, seed: int = 1) -> tuple:
    """``(X, y)``: ``n`` rows of 20 standard-normal features rounded to 5 decimals (CSV cells of 7-8 characters, as
    exported tables have), and a binary label from a non-linear function of them (so trees have work to do)."""
    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(size=(n, BENCH_FEATURES)), 5)
    score = X[:, :5].sum(axis=1) + np.sin(3 * X[:, 5]) * X[:, 6] + (X[:, 7] > 0.5) * X[:, 8] ** 2
    y = (score + 0.5 * rng.normal(size=n) > 0).astype(np.int64)
    return X, y


def build_bench_models(out_dir: Path, train_rows: int = 50_000) -> dict:
    """The benchmark's models, trained on :func:`bench_data` rows, ``{name: model.tar.gz}`` (built once):
    ``xgboost``: 300 trees of depth 6 (``binary:logistic``, ``hist``), the SageMaker XGBoost layout (UBJSON);
    ``sklearn-rf``: RandomForestClassifier, 100 trees of depth at most 12 (``n_jobs`` unset: its predict uses one
    thread); ``sklearn-hgb``: HistGradientBoostingClassifier, 200 iterations of 31 leaves (its predict uses every
    core through OpenMP). The scikit-learn ones in the SageMaker scikit-learn layout (``model.joblib``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"xgboost": out_dir / "xgb-300x6.tar.gz", "sklearn-rf": out_dir / "sk-rf-100.tar.gz",
             "sklearn-hgb": out_dir / "sk-hgb-200.tar.gz"}
    if all(p.exists() for p in paths.values()):
        return paths
    X, y = bench_data(train_rows, seed=7)
    if not paths["xgboost"].exists():
        import xgboost as xgb

        booster = xgb.train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "tree_method": "hist"},
                            xgb.DMatrix(X, label=y), 300)
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "xgboost-model").write_bytes(bytes(booster.save_raw("ubj")))
            tar_folder(Path(d), paths["xgboost"])
    if not paths["sklearn-rf"].exists():
        from sklearn.ensemble import RandomForestClassifier

        build_joblib(RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0).fit(X, y),
                     paths["sklearn-rf"])
    if not paths["sklearn-hgb"].exists():
        from sklearn.ensemble import HistGradientBoostingClassifier

        build_joblib(HistGradientBoostingClassifier(max_iter=200, early_stopping=False, random_state=0).fit(X, y),
                     paths["sklearn-hgb"])
    return paths


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
