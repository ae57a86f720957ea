"""Load a CatBoost binary model (``.cbm``) with CatBoost (extra ``catboost``).

The file is the one inspection reported as ``catboost`` (``member=`` chooses among several; without a report
the folder's files are recognised by content, ``artifact_tools.formats.catboost.is_catboost``). The model is
read as data first (``formats.catboost.summarize``: a damaged or cut file is a CorruptArtifact before
CatBoost's loader sees it); CatBoost models carry no code, so ``trust`` changes nothing. The class follows the
loss function the model was trained with (``formats.catboost.model_kind``): ``CatBoostClassifier``,
``CatBoostRegressor`` or ``CatBoostRanker`` (plain ``CatBoost`` when the model names none).

``predict`` takes numpy arrays, lists (one row may be given flat) or DataFrames (columns put in the model's
feature order when they hold every feature name; categorical columns as text or integers) and returns, for a
classifier, ``predict_proba`` (one probability per class, as XGBoost and LightGBM boosters give
probabilities), else ``predict`` (values; raw formula values for a model without a loss function). ``info``
holds the feature names, categorical feature indices, loss function, class names and tree count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from artifact_tools.errors import ArtifactError, CorruptArtifact
from artifact_tools.formats import catboost as catboost_format

from .base import LoadedModel, parse_options, require
from .onnx import choose_file


@dataclass(frozen=True)
class CatBoostOptions:
    """``member``: which CatBoost model file of the artifact to load, when it holds several."""

    member: str | None = None


OPTIONS = CatBoostOptions


def load(root: Path, report: Any = None, *, trust: bool | str = False, **options: Any) -> LoadedModel:
    """Load the CatBoost model of an unpacked artifact folder ``root``; options: :class:`CatBoostOptions`."""
    del trust  # a CatBoost model file runs no code
    member = parse_options(CatBoostOptions, options, "CatBoost artifacts").member
    root = Path(root)
    name = choose_file(root, report, "catboost", member, "CatBoost model", catboost_format.is_catboost)
    data = (root / name).read_bytes()
    summary = catboost_format.summarize(data)
    catboost = require("catboost", "catboost")
    kind = summary["model_kind"] if summary["loss_function"] else "generic"
    cls = {"classifier": catboost.CatBoostClassifier, "regressor": catboost.CatBoostRegressor,
           "ranker": catboost.CatBoostRanker, "generic": catboost.CatBoost}[kind]
    try:
        model = cls().load_model(blob=data)
    except catboost.CatBoostError as e:
        raise CorruptArtifact(f"CatBoost {catboost.__version__} cannot read {name}: {str(e).strip()[:300]}") from None
    names = list(model.feature_names_ or [])
    info = {"file": name, "kind": kind, "loss_function": summary["loss_function"], "trees": model.tree_count_,
            "num_features": len(names), "feature_names": names,
            "cat_feature_indices": list(model.get_cat_feature_indices()),
            "class_names": summary["class_names"], "catboost_version_saved": summary["catboost_version"],
            "catboost_version_installed": catboost.__version__}
    return LoadedModel(model, "catboost", lambda x: _predict(model, kind, names, x), info=info,
                       sample_fn=lambda: sample_rows(model))


SAMPLE_ROWS = 2


def sample_rows(model: Any):
    """Two rows (a DataFrame with the model's feature names) for a loaded CatBoost model: seeded normal values
    for numeric features, a word for categorical and text features (their indices from the model's own
    ``get_cat_feature_indices`` / ``get_text_feature_indices``); embedding features cannot be sampled."""
    import pandas as pd

    names = list(model.feature_names_ or [])
    if not names:
        raise ArtifactError("no sample input can be built: the CatBoost model records no features")
    if list(model.get_embedding_feature_indices()):
        raise ArtifactError("no sample input can be built: the CatBoost model takes embedding features, whose "
                            "size the model does not record")
    texts = set(model.get_text_feature_indices())
    categorical = set(model.get_cat_feature_indices())
    values = np.random.default_rng(0).normal(size=(SAMPLE_ROWS, len(names)))
    columns: dict[str, Any] = {}  # name -> texts, categories or a float64 array
    for i, name in enumerate(names):
        if i in texts:
            columns[name] = ["a sample text", "another sample text"][:SAMPLE_ROWS]
        elif i in categorical:
            columns[name] = ["a"] * SAMPLE_ROWS
        else:
            columns[name] = values[:, i]
    return pd.DataFrame(columns)


def _predict(model: Any, kind: str, names: list[str], data: Any) -> np.ndarray:
    if hasattr(data, "columns") and hasattr(data, "dtypes"):  # a pandas DataFrame
        if names and set(names) <= set(map(str, data.columns)):
            data = data[names]
        elif data.shape[1] != len(names):
            raise ArtifactError(f"the model takes {len(names)} features ({', '.join(names[:10])}), "
                                f"the table has {data.shape[1]} columns")
    else:
        data = np.asarray(data)
        if data.ndim == 1:
            data = data.reshape(1, -1)
        if data.ndim != 2 or data.shape[1] != len(names):
            raise ArtifactError(f"the model takes rows of {len(names)} features, not an array of shape {data.shape}")
    try:
        if kind == "classifier":
            return np.asarray(model.predict_proba(data))
        if kind == "generic":
            return np.asarray(model.predict(data, prediction_type="RawFormulaVal"))
        return np.asarray(model.predict(data))
    except Exception as e:  # CatBoostError for bad feature values (a text in a numeric column...)
        if type(e).__name__ != "CatBoostError":
            raise
        raise ArtifactError(f"CatBoost refused the input: {str(e).strip()[:300]}") from None
