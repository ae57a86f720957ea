"""Load a LightGBM text model with LightGBM (extra ``lightgbm``).

The file is the one inspection reported as ``lightgbm`` (``member=`` chooses among several; without a report
the folder's files are recognised by content, ``artifact_tools.formats.lightgbm.is_lightgbm``). The text is
checked as data first (``formats.lightgbm.summarize``: a damaged or cut file is a CorruptArtifact before
LightGBM's parser sees it), then ``lightgbm.Booster(model_str=...)`` loads it; model files carry no code, so
``trust`` changes nothing. A ``Booster`` saved with pickle (``model.pkl``) is never unpickled: its model text is
read from the pickle as data (``artifact_tools.formats.lightgbm_pickle``) and loaded the same way.

``predict`` takes numpy arrays, lists (one row may be given flat) or DataFrames (columns put in the model's
feature order when they hold every feature name; pandas categorical columns are mapped as at training) and
returns ``Booster.predict``: probabilities for binary and multiclass objectives, values for regression.
``info`` holds the feature names and count, categorical features, objective, class and tree counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from artifact_tools.errors import ArtifactError, CorruptArtifact, NotLoadable
from artifact_tools.formats import lightgbm as lightgbm_format
from artifact_tools.formats import lightgbm_pickle

from .base import LoadedModel, parse_options, require
from .onnx import choose_file


@dataclass(frozen=True)
class LightGBMOptions:
    """``member``: which LightGBM model file of the artifact to load, when it holds several."""

    member: str | None = None


OPTIONS = LightGBMOptions


def load(root: Path, report: Any = None, *, trust: bool | str = False, **options: Any) -> LoadedModel:
    """Load the LightGBM model of an unpacked artifact folder ``root``; options: :class:`LightGBMOptions`."""
    del trust  # a LightGBM model file runs no code
    member = parse_options(LightGBMOptions, options, "LightGBM artifacts").member
    root = Path(root)
    name = choose_file(root, report, "lightgbm", member, "LightGBM model", lightgbm_format.is_lightgbm)
    data = (root / name).read_bytes()
    if not lightgbm_format.is_lightgbm(data[:65536]):  # a pickled Booster: its model text, read as data
        text = lightgbm_pickle.model_text(data)
        if text is None:
            raise NotLoadable(f"{name} is neither a LightGBM text model nor a pickled LightGBM Booster")
        data = text
    summary = lightgbm_format.summarize(data)
    lgb = require("lightgbm", "lightgbm")
    try:
        booster = lgb.Booster(model_str=without_tree_sizes(data.decode("utf-8")))
    except lgb.basic.LightGBMError as e:
        raise CorruptArtifact(f"LightGBM {lgb.__version__} cannot read {name}: {str(e).strip()[:300]}") from None
    except ValueError as e:  # json.JSONDecodeError: LightGBM echoes a parameter value such as 'nan' as bad JSON
        raise CorruptArtifact(f"LightGBM {lgb.__version__} cannot read the parameters of {name} "
                              f"(a value it turns into invalid JSON: {str(e).strip()[:200]})") from None
    info = {"file": name, "version": summary["version"], "objective": summary["objective"],
            "num_class": summary["num_class"], "trees": booster.num_trees(), "num_features": booster.num_feature(),
            "feature_names": booster.feature_name(), "categorical_features": summary["categorical_features"],
            "lightgbm_version_installed": lgb.__version__}
    categorical = _categorical_indices(summary, booster.feature_name())
    return LoadedModel(booster, "lightgbm", lambda x: _predict(booster, x), info=info,
                       sample_fn=lambda: sample_rows(booster, categorical, summary["pandas_categorical"]))


def without_tree_sizes(text: str) -> str:
    """The model text without its header's ``tree_sizes=`` line.

    With ``tree_sizes`` LightGBM (``GBDT::LoadModelFromString``, 4.x) parses the trees in an OpenMP loop at the
    byte offsets the line gives, and an error there (an offset that misses a ``Tree=`` line, a count that does not
    match an array) aborts the whole process ("terminate called without an active exception") instead of raising
    ``LightGBMError``; without the line it reads the same trees one after another and raises. The line holds only
    those offsets, so the model is unchanged."""
    end = min((k for k in (text.find("\nTree="), text.find("\nend of trees")) if k >= 0), default=len(text))
    header = [line for line in text[:end].split("\n") if not line.strip().startswith("tree_sizes=")]
    return "\n".join(header) + text[end:]


SAMPLE_ROWS = 2


def _categorical_indices(summary: dict, names: list[str]) -> list[int]:
    """Positions of the categorical features: the ``categorical_feature`` parameter LightGBM writes into the
    model (indices, ``basic.py`` resolves names and pandas categories to them before training), else the
    features whose ``feature_infos`` list categories."""
    text = (summary.get("parameters") or {}).get("categorical_feature") or ""
    found = [int(t) for t in str(text).replace(" ", "").split(",") if t.isdigit() and len(t) < 10]
    if not found:
        found = [names.index(n) for n in summary.get("categorical_features") or [] if n in names]
    return sorted({i for i in found if 0 <= i < len(names)})


def sample_rows(booster: Any, categorical: list[int], pandas_categorical: list | None):
    """Two rows (a DataFrame with the model's feature names) of seeded normal values, category 0 for
    categorical features; when the model was trained on pandas categorical columns (``pandas_categorical`` has
    one category list per categorical feature, in feature order), those columns are pandas categoricals holding
    the first category, as LightGBM requires of a DataFrame for such a model."""
    pd = require("pandas", "lightgbm")
    names = booster.feature_name()
    values = np.random.default_rng(0).normal(size=(SAMPLE_ROWS, len(names)))
    values[:, categorical] = 0.0
    frame = pd.DataFrame(values, columns=names)
    if pandas_categorical and len(pandas_categorical) == len(categorical):
        for i, categories in zip(categorical, pandas_categorical):
            frame[names[i]] = pd.Categorical([categories[0]] * SAMPLE_ROWS, categories=categories)
    return frame


def _predict(booster: Any, data: Any) -> np.ndarray:
    if hasattr(data, "columns") and hasattr(data, "dtypes"):  # a pandas DataFrame
        names = booster.feature_name()
        if set(names) <= set(map(str, data.columns)):
            data = data[names]
        elif data.shape[1] != len(names):
            raise ArtifactError(f"the model takes {len(names)} features ({', '.join(names[:10])}...), "
                                f"the table has {data.shape[1]} columns")
    else:
        data = np.asarray(data, dtype=np.float64)
        if data.ndim == 1:
            data = data.reshape(1, -1)
        if data.ndim != 2 or data.shape[1] != booster.num_feature():
            raise ArtifactError(f"the model takes rows of {booster.num_feature()} features, not an array of shape "
                                f"{data.shape}")
    return np.asarray(booster.predict(data))
