"""``LoadedModel.sample_input()`` of XGBoost models: rows built from the model alone, as wide as XGBoost says.

The expected width is XGBoost's own ``Booster.num_features()``; the expected values are computed from XGBoost's own
dump of the trees (``Booster.trees_to_dataframe``), not from our reader; predictions on the sample are compared with
XGBoost predicting on a DMatrix it builds itself.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

import loaders
from loaders import xgboost as xgb_loader

xgb = pytest.importorskip("xgboost")
pd = pytest.importorskip("pandas")

DATA = Path(__file__).parent / "data" / "xgboost_legacy"
MANIFEST = json.loads((DATA / "manifest.json").read_text())
CORPUS_ENTRIES = {  # entry -> the model file of the artifact
    "cookbook-xgboost-1": "model.tar.gz", "cookbook-xgboost-2": "model.tar.gz",
    "sdk-xgboost-model": "xgb_model.tar.gz", "sdk-xgboost-abalone": "xgb_model.tar.gz",
    "xgbcontainer-pickled": "xgboost-model", "xgbcontainer-saved-booster": "xgboost-model",
}


def xgboost_predicts(booster, sample) -> np.ndarray:
    """XGBoost's own prediction for the sample, through a DMatrix it builds from the rows or the frame."""
    if isinstance(sample, pd.DataFrame):
        return booster.predict(xgb.DMatrix(sample, enable_categorical=True))
    types = booster.feature_types
    return booster.predict(xgb.DMatrix(sample, feature_names=booster.feature_names, feature_types=types,
                                       enable_categorical=bool(types and "c" in types)))


def check_sample(loaded) -> object:
    booster = loaded.model
    sample = loaded.sample_input()
    assert sample.shape == (3, booster.num_features())
    if booster.feature_names:
        assert isinstance(sample, pd.DataFrame) and list(sample.columns) == booster.feature_names
    else:
        assert isinstance(sample, np.ndarray) and sample.dtype == np.float32
    got = loaded.predict(sample)
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got, xgboost_predicts(booster, sample))
    return sample


def quartiles_from_xgboost_dump(booster) -> np.ndarray:
    """The lower quartile, median and upper quartile of each feature's numerical split thresholds, from XGBoost's
    own text dump of the trees (index ``floor((n - 1) * q)`` of the sorted thresholds); 0 for unused features."""
    frame = booster.trees_to_dataframe()
    names = booster.feature_names or [f"f{i}" for i in range(booster.num_features())]
    out = np.zeros((3, len(names)), np.float32)
    numerical = frame[(frame["Feature"] != "Leaf") & frame["Split"].notna()]
    for j, name in enumerate(names):
        values = np.sort(numerical.loc[numerical["Feature"] == name, "Split"].to_numpy(np.float32))
        for row, q in enumerate((0.25, 0.5, 0.75)):
            if len(values):
                out[row, j] = values[int((len(values) - 1) * q)]
    return out


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_every_era_gives_a_sample_xgboost_predicts_on(entry):
    check_sample(xgb_loader.load((DATA / entry["file"]).read_bytes()))


@pytest.mark.parametrize("name", ["x090-binary-logistic.model", "x142-multi-softprob.p4.pkl",
                                  "x176-binary-logistic.ubj", "x176-dart.model", "x176-survival-aft.model"])
def test_sample_values_are_quartiles_of_the_split_thresholds_xgboost_dumps(name):
    loaded = xgb_loader.load((DATA / name).read_bytes())
    sample = loaded.sample_input()
    rows = sample.to_numpy(np.float32) if isinstance(sample, pd.DataFrame) else sample
    np.testing.assert_allclose(rows, quartiles_from_xgboost_dump(loaded.model), rtol=1e-6)


def test_a_feature_no_split_uses_is_zero():
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(400, 5)).astype(np.float32)
    rows[:, 3] = 7.0  # constant: no split can use it
    booster = xgb.train({"objective": "reg:squarederror", "max_depth": 3}, xgb.DMatrix(rows, label=rows[:, 0] * 2), 5)
    loaded = xgb_loader.load(bytes(booster.save_raw("ubj")))
    sample = check_sample(loaded)
    assert not (sample[:, 3] != 0).any()
    dumped = quartiles_from_xgboost_dump(loaded.model)
    np.testing.assert_allclose(sample, dumped, rtol=1e-6)
    assert (dumped[1, [0, 1, 2, 4]] != 0).any()


def test_categorical_features_take_a_category_the_model_recorded():
    rng = np.random.default_rng(6)
    frame = pd.DataFrame({"size": rng.normal(size=300).astype(np.float32),
                          "colour": pd.Categorical(rng.choice(["red", "blue", "green"], 300))})
    labels = ((frame["size"] > 0) ^ (frame["colour"] == "red")).astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3},
                        xgb.DMatrix(frame, label=labels, enable_categorical=True), 6)
    loaded = xgb_loader.load(bytes(booster.save_raw("ubj")))
    sample = check_sample(loaded)
    assert str(sample["colour"].dtype) == "category"
    recorded = dict(loaded.model.get_categories(export_to_arrow=True).to_arrow())["colour"].to_pylist()
    assert list(sample["colour"].cat.categories) == recorded and sample["colour"].iloc[0] in recorded
    np.testing.assert_array_equal(loaded.predict(sample), booster.predict(xgb.DMatrix(sample, enable_categorical=True)))


def test_model_tar_gz_sample_through_loaders_load(tmp_path, monkeypatch):
    monkeypatch.setenv("ARTIFACT_TOOLS_CACHE", str(tmp_path / "cache"))
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(DATA / "x176-multi-softprob.model", arcname="xgboost-model")
    loaded = loaders.load(archive)
    sample = check_sample(loaded)
    assert loaded.predict(sample).shape == (3, 3)


@pytest.mark.parametrize("entry", sorted(CORPUS_ENTRIES))
def test_corpus_artifacts_give_a_sample(corpus, entry, tmp_path, monkeypatch):
    monkeypatch.setenv("ARTIFACT_TOOLS_CACHE", str(tmp_path / "cache"))
    check_sample(loaders.load(corpus / entry / CORPUS_ENTRIES[entry]))
