"""Legacy XGBoost models (0.90 and 1.x pickles, legacy binary) read as data and run by XGBoost 3.x.

Expected numbers come from the old XGBoost builds themselves: tests/data/xgboost_legacy holds models
written by XGBoost 0.90 (Python 2.7 and 3), 1.2.1, 1.4.2 and 1.7.6 with the predictions each computed
(scripts/make_xgboost_legacy_fixtures.py), and the corpus' golden/ files hold XGBoost 1.7.6's
predictions for real SageMaker artifacts.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from artifact_tools.errors import ArtifactError, CorruptArtifact, NotAnArtifact, NotLoadable, UnsafeArtifact
from artifact_tools.filetree import MappingTree
from artifact_tools.formats import xgboost as legacy
from loaders import xgboost as xgb_loader
from loaders import xgboost_legacy as shim

xgb = pytest.importorskip("xgboost")

DATA = Path(__file__).parent / "data" / "xgboost_legacy"
MANIFEST = json.loads((DATA / "manifest.json").read_text())
TOLERANCE = 1e-5

CORPUS_ENTRIES = {  # entry -> (file, era)
    "cookbook-xgboost-1": ("model.tar.gz", "py3-pickle-legacy-binary"),
    "cookbook-xgboost-2": ("model.tar.gz", "py3-pickle-legacy-binary"),
    "sdk-xgboost-model": ("xgb_model.tar.gz", "py2-pickle"),
    "sdk-xgboost-abalone": ("xgb_model.tar.gz", "pickle-1.x-snapshot"),
    "xgbcontainer-pickled": ("xgboost-model", "pickle-1.x-snapshot"),
    "xgbcontainer-saved-booster": ("xgboost-model", "legacy-binary"),
}


def read_csv(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)


def corpus_bytes(corpus: Path, entry: str) -> bytes:
    path = corpus / entry / CORPUS_ENTRIES[entry][0]
    if path.name.endswith(".tar.gz"):
        with tarfile.open(path) as archive:
            members = [m for m in archive.getmembers() if m.isfile()]
            assert len(members) == 1
            return archive.extractfile(members[0]).read()
    return path.read_bytes()


def margins(booster, rows: np.ndarray) -> np.ndarray:
    types = booster.feature_types
    matrix = xgb.DMatrix(rows, missing=np.nan, feature_names=booster.feature_names,
                         feature_types=types, enable_categorical=bool(types and "c" in types))
    return booster.predict(matrix, output_margin=True)


def assert_matches(loaded, inputs: Path, margin: Path, pred: Path) -> None:
    rows = read_csv(inputs).astype(np.float32)
    expected_margin, expected_pred = read_csv(margin), read_csv(pred)
    got_pred = loaded.predict(rows)
    got_margin = margins(loaded.model, rows)
    assert got_pred.size == expected_pred.size and got_margin.size == expected_margin.size
    np.testing.assert_allclose(got_margin.reshape(expected_margin.shape), expected_margin,
                               rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(got_pred.reshape(expected_pred.shape), expected_pred,
                               rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_fixture_predictions_equal_the_writing_version(entry):
    data = (DATA / entry["file"]).read_bytes()
    assert legacy.detect_era(data) == entry["era"]
    loaded = xgb_loader.load(data)
    assert loaded.info["era"] == entry["era"]
    assert loaded.info["objective"] == entry["objective"].replace("reg:linear", "reg:squarederror")
    # the binary format has no place for feature names; pickles and JSON documents keep them
    has_names = entry["era"] != "legacy-binary"
    assert loaded.model.feature_names == (entry["feature_names"] if has_names else None)
    assert_matches(loaded, DATA / entry["inputs"], DATA / entry["margin"], DATA / entry["pred"])


@pytest.mark.parametrize("entry", sorted(CORPUS_ENTRIES))
def test_corpus_predictions_equal_xgboost_1_7(corpus, entry):
    data = corpus_bytes(corpus, entry)
    era = CORPUS_ENTRIES[entry][1]
    assert legacy.detect_era(data) == era
    assert legacy.read_model(data).era == era
    loaded = xgb_loader.load(data)
    golden = corpus / "golden"
    assert_matches(loaded, golden / f"{entry}.inputs.csv", golden / f"{entry}.margin.csv",
                   golden / f"{entry}.pred.csv")


def test_sagemaker_archive_tree_is_searched_by_content(corpus):
    data = corpus_bytes(corpus, "cookbook-xgboost-2")
    tree = MappingTree({"model/xgboost-model": data, "code/inference.py": b"import xgboost\n",
                        "notes.json": b'{"learner": 1}'})
    assert xgb_loader.find_model_file(tree) == "model/xgboost-model"
    loaded = xgb_loader.load(tree)
    assert loaded.info["file"] == "model/xgboost-model"
    golden = corpus / "golden"
    assert_matches(loaded, golden / "cookbook-xgboost-2.inputs.csv",
                   golden / "cookbook-xgboost-2.margin.csv", golden / "cookbook-xgboost-2.pred.csv")


def test_unpacked_folder_and_loose_file(tmp_path):
    entry = next(e for e in MANIFEST if e["file"] == "x142-binary-logistic.p3.pkl")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "inference.py").write_text("import xgboost\n")
    (tmp_path / "xgboost-model").write_bytes((DATA / entry["file"]).read_bytes())
    for source in (tmp_path, tmp_path / "xgboost-model", str(tmp_path)):
        loaded = xgb_loader.load(source)
        assert loaded.info["file"] == "xgboost-model"
        assert_matches(loaded, DATA / entry["inputs"], DATA / entry["margin"], DATA / entry["pred"])


@pytest.mark.parametrize("name", ["x090-dart.model", "x176-gblinear.p4.pkl",
                                  "x176-categorical.p4.pkl", "x121-multi-softprob.p4.pkl",
                                  "x090py2-binary-logistic.p0.pkl"])
@pytest.mark.parametrize("suffix", [".json", ".ubj"])
def test_converted_files_load_in_xgboost_from_disk(tmp_path, name, suffix):
    entry = next(e for e in MANIFEST if e["file"] == name)
    out = tmp_path / f"model{suffix}"
    found = shim.convert_file((DATA / name).read_bytes(), out)
    assert found["era"] == entry["era"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    booster = xgb.Booster(model_file=str(out))
    rows = read_csv(DATA / entry["inputs"]).astype(np.float32)
    expected = read_csv(DATA / entry["margin"])
    np.testing.assert_allclose(margins(booster, rows).reshape(expected.shape), expected,
                               rtol=0, atol=TOLERANCE)


def test_json_document_is_plain_json_that_xgboost_reads():
    stem = "x176-multi-softprob"
    document = legacy.to_json_document(legacy.read_model((DATA / f"{stem}.model").read_bytes()))
    booster = xgb.Booster()
    booster.load_model(bytearray(json.dumps(document).encode()))
    rows = read_csv(DATA / f"{stem}.inputs.csv").astype(np.float32)
    expected = read_csv(DATA / f"{stem}.pred.csv")
    np.testing.assert_allclose(booster.predict(xgb.DMatrix(rows, missing=np.nan)), expected,
                               rtol=0, atol=TOLERANCE)


def test_current_xgboost_pickle_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(80, 3)).astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2},
                        xgb.DMatrix(rows, label=(rows[:, 0] > 0)), 3)
    data = pickle.dumps(booster)  # the framework writes it; we only read it as data
    model = legacy.read_model(data)
    assert model.era == "pickle-1.x-snapshot" and len(model.trees) == 3
    converted, _ = xgb_loader.load_booster(data)
    np.testing.assert_allclose(converted.predict(xgb.DMatrix(rows)),
                               booster.predict(xgb.DMatrix(rows)), rtol=0, atol=1e-7)


@pytest.mark.parametrize("params", [{"multi_strategy": "multi_output_tree"}, {}],
                         ids=["vector-leaves", "one-tree-per-target"])
def test_current_multi_target_models_are_passed_to_xgboost(params):
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(120, 3)).astype(np.float32)
    targets = np.stack([rows[:, 0], rows[:, 1] * 2], axis=1)
    booster = xgb.train(dict(params, tree_method="hist", max_depth=3),
                        xgb.DMatrix(rows, label=targets), 3)
    for fmt, era in (("json", "json"), ("ubj", "ubjson")):
        loaded = xgb_loader.load(bytes(booster.save_raw(fmt)))
        assert loaded.info["era"] == era and not loaded.info["converted"]
        np.testing.assert_array_equal(loaded.predict(rows), booster.predict(xgb.DMatrix(rows)))


def test_facts_agree_across_formats_and_with_xgboost():
    stem = "x176-binary-logistic"
    booster = xgb.Booster(model_file=str(DATA / f"{stem}.json"))
    config = json.loads(booster.save_config())["learner"]
    expected = {
        "objective": config["objective"]["name"],
        "base_score": np.float32(json.loads(config["learner_model_param"]["base_score"])[0]),
        "num_feature": booster.num_features(),
        "num_class": int(config["learner_model_param"]["num_class"]),
        "num_trees": len(booster.get_dump()),
        "booster": config["gradient_booster"]["name"],
    }
    for suffix in (".model", ".raw", ".p4.pkl", ".json", ".ubj"):
        found = legacy.facts((DATA / f"{stem}{suffix}").read_bytes())
        found["base_score"] = np.float32(found["base_score"])
        assert {k: found[k] for k in expected} == expected, suffix
        has_names = suffix not in (".model", ".raw")  # the binary format keeps no names
        assert found["feature_names"] == (booster.feature_names if has_names else None)


def test_reading_never_imports_xgboost_or_loaders():
    code = ("import sys; from pathlib import Path; from artifact_tools.formats import xgboost as L; "
            f"f = L.facts(Path({str(DATA / 'x090py2-binary-logistic.p0.pkl')!r}).read_bytes()); "
            "assert f['era'] == 'py2-pickle', f; "
            f"p = L.checked_bytes(Path({str(DATA / 'x176-binary-logistic.ubj')!r}).read_bytes()); "
            "assert not any(m.split('.')[0] in ('xgboost', 'loaders') for m in sys.modules), 'imported'")
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(root)))
    assert proc.returncode == 0, proc.stderr


class _RunsShell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickles_with_other_globals_are_refused_unexecuted(tmp_path):
    marker = tmp_path / "executed"
    hostile = pickle.dumps(_RunsShell(marker), protocol=2)
    with pytest.raises(UnsafeArtifact, match="system"):
        legacy.read_model(hostile)
    assert not marker.exists()
    wrapper = (b"\x80\x04\x8c\x0fxgboost.sklearn\x94\x8c\rXGBClassifier\x94\x93\x94)\x81\x94}\x94"
               b"b.")
    with pytest.raises(UnsafeArtifact, match=r"xgboost\.sklearn\.XGBClassifier"):
        legacy.read_model(wrapper)
    with pytest.raises(NotAnArtifact):
        legacy.read_model(pickle.dumps({"handle": b"\x00" * 10}))


def test_unrelated_bytes_are_no_era():
    for data in (b"", b"PK\x03\x04" + b"\x00" * 100, b'{"a": 1}', bytes(range(256)) * 4,
                 pickle.dumps({"x": 1}), b"\x00" * 300):
        assert legacy.detect_era(data) is None
    with pytest.raises(NotAnArtifact):
        legacy.read_model(b"\x00" * 300)


def test_json_model_with_a_damaged_child_index_is_refused_before_xgboost_runs_it():
    document = json.loads((DATA / "x176-binary-logistic.json").read_bytes())
    document["learner"]["gradient_booster"]["model"]["trees"][0]["left_children"][0] = 99999
    with pytest.raises(CorruptArtifact, match="child index"):
        xgb_loader.load(json.dumps(document).encode())  # XGBoost 3.2 itself segfaults on it


def test_convert_file_wants_a_model_suffix(tmp_path):
    with pytest.raises(NotLoadable, match="json or .ubj"):
        shim.convert_file((DATA / "x090-gblinear.model").read_bytes(), tmp_path / "out.bin")


ROBUSTNESS_FILES = ["x090py2-binary-logistic.p0.pkl", "x090-binary-logistic.p3.pkl",
                    "x090-count-poisson.model", "x090-dart.model", "x121-binary-logistic.p3.pkl",
                    "x142-multi-softprob.p4.pkl", "x176-categorical.p4.pkl", "x176-gblinear.model",
                    "x176-binary-logistic.json", "x176-binary-logistic.ubj"]
ROBUSTNESS_DATA = {name: (DATA / name).read_bytes() for name in ROBUSTNESS_FILES}
ROWS = read_csv(DATA / "x090-binary-logistic.inputs.csv").astype(np.float32)[:8]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(ROBUSTNESS_FILES), cut=st.floats(0, 1, exclude_max=True))
def test_truncated_files_fail_clearly(name, cut):
    data = ROBUSTNESS_DATA[name]
    with pytest.raises(ArtifactError):
        legacy.read_model(data[:int(len(data) * cut)])


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(ROBUSTNESS_FILES),
       flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
                      min_size=1, max_size=4))
def test_damaged_files_fail_clearly_or_still_run(name, flips):
    data = bytearray(ROBUSTNESS_DATA[name])
    for where, xor in flips:
        data[int(len(data) * where)] ^= xor
    try:
        model = legacy.read_model(bytes(data))
        booster, _ = xgb_loader.load_booster(bytes(data))
    except ArtifactError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert model.booster in ("gbtree", "dart", "gblinear")
    rows = ROWS[:, :max(1, min(ROWS.shape[1], booster.num_features()))]
    try:
        booster.predict(xgb.DMatrix(rows, missing=np.nan))
    except (ValueError, xgb.core.XGBoostError):
        pass  # e.g. a damaged feature name or column count XGBoost itself reports


JSON_MODEL = legacy.to_json_document(legacy.read_model((DATA / "x176-categorical.p4.pkl")
                                                       .read_bytes()))
TREE_FIELDS = ["left_children", "right_children", "parents", "split_indices", "default_left",
               "split_type", "categories", "categories_nodes", "categories_segments",
               "categories_sizes"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(0, 4), st.sampled_from(TREE_FIELDS), st.integers(0, 30),
                                st.sampled_from([-2, -1, 0, 1, 2, 5, 6, 30, 2**31 - 1, 2**40])),
                      min_size=1, max_size=3))
def test_damaged_tree_arrays_never_reach_xgboost(edits):
    """XGBoost 3.2 indexes child, parent and category arrays without bounds checks; a damaged
    JSON model must be refused before it runs (the reader re-encodes what it checked)."""
    document = json.loads(json.dumps(JSON_MODEL))
    for tree, key, index, value in edits:
        values = document["learner"]["gradient_booster"]["model"]["trees"][tree][key]
        if values:
            values[index % len(values)] = value
    try:
        loaded = xgb_loader.load(json.dumps(document).encode())
    except ArtifactError:
        return
    loaded.predict(read_csv(DATA / "x176-categorical.inputs.csv").astype(np.float32))


# ---- current files go to XGBoost as they are, after the same checks

def _trained(rounds: int = 6, categorical: bool = False):
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(300, 4)).astype(np.float32)
    labels = (rows[:, 0] + rows[:, 1] * rows[:, 2] > 0).astype(np.float32)
    if categorical:
        import pandas as pd

        frame = pd.DataFrame(rows, columns=list("abcd"))
        frame["c"] = pd.Categorical(rng.integers(0, 5, len(rows)))
        labels = (labels + (frame["c"].cat.codes.to_numpy() % 2)) % 2
        matrix = xgb.DMatrix(frame, label=labels, enable_categorical=True)
    else:
        matrix = xgb.DMatrix(rows, label=labels)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "tree_method": "hist"}, matrix, rounds)
    return booster, matrix


def test_current_ubjson_file_is_given_to_xgboost_as_it_is():
    booster, matrix = _trained()
    raw = bytes(booster.save_raw("ubj"))
    payload, info = legacy.checked_bytes(raw)
    assert payload == raw and info["era"] == "ubjson" and not info["converted"]
    loaded = xgb_loader.load(raw)
    np.testing.assert_array_equal(loaded.model.predict(matrix), booster.predict(matrix))


def test_the_fast_ubjson_walk_reads_what_the_json_file_holds():
    """XGBoost 1.7.6 wrote the same model as JSON (read by Python's json) and as UBJSON (walked for all trees)."""
    from_json = legacy.read_model((DATA / "x176-binary-logistic.json").read_bytes()).forest
    from_ubj = legacy.read_model((DATA / "x176-binary-logistic.ubj").read_bytes()).forest
    doc = legacy._ubj_loads((DATA / "x176-binary-logistic.ubj").read_bytes(), "the model")
    assert isinstance(doc["learner"]["gradient_booster"]["model"]["trees"], legacy._UBJTrees)
    np.testing.assert_array_equal(from_ubj.sizes, from_json.sizes)
    for name in legacy._NODE_COLUMNS:
        np.testing.assert_array_equal(from_ubj.column(name), from_json.column(name), err_msg=name)


def _tree_array(raw: bytearray, tree: int, key: bytes) -> tuple[int, np.dtype]:
    """Where the values of ``key`` of tree ``tree`` start in an XGBoost UBJSON file, found by plain search."""
    at = -1
    for _ in range(tree + 1):
        at = raw.find(key + b"[$", at + 1)
    assert at > 0
    dtype = np.dtype({b"l": ">i4", b"U": "u1", b"L": ">i8", b"d": ">f4"}[bytes(raw[at + len(key) + 2:][:1])])
    return at + len(key) + 5 + 8, dtype


def _damaged(raw: bytes, edits) -> bytes:
    out = bytearray(raw)
    for tree, key, index, value in edits:
        start, dtype = _tree_array(out, tree, key)
        count = int.from_bytes(out[start - 8:start], "big")
        if count:
            at = start + dtype.itemsize * (index % count)
            out[at:at + dtype.itemsize] = np.array([value]).astype(dtype).tobytes()
    return bytes(out)


@pytest.mark.parametrize("key, value, message", [(b"left_children", 99999, "child index"),
                                                 (b"parents", -7, "parent index"),
                                                 (b"right_children", 5, "right child|child index"),
                                                 (b"split_indices", 40, "feature 40")])
def test_ubjson_model_with_a_damaged_tree_is_refused_before_xgboost_reads_it(key, value, message):
    booster, _ = _trained()
    raw = bytes(booster.save_raw("ubj"))
    damaged = _damaged(raw, [(2, key, 0 if key != b"parents" else 1, value)])
    with pytest.raises(CorruptArtifact, match=message):
        xgb_loader.load(damaged)  # XGBoost 3.2 itself crashes on such files


UBJ_FIELDS = [b"left_children", b"right_children", b"parents", b"split_indices", b"default_left", b"split_type",
              b"categories", b"categories_nodes", b"categories_segments", b"categories_sizes"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(0, 5), st.sampled_from(UBJ_FIELDS), st.integers(0, 30),
                                st.sampled_from([-2, -1, 0, 1, 2, 5, 6, 30, 2**31 - 1])),
                      min_size=1, max_size=3))
def test_damaged_ubjson_tree_arrays_never_reach_xgboost(edits):
    """The values of a current UBJSON file (categorical splits included) damaged in place: refused, or a model
    XGBoost reads and predicts with (the process would crash otherwise)."""
    raw, frame = _categorical_ubj()
    try:
        loaded = xgb_loader.load(_damaged(raw, edits))
    except ArtifactError as e:
        assert str(e) and "\n" not in str(e)
        return
    loaded.predict(frame)


_CACHE: dict = {}


def _categorical_ubj():
    if "ubj" not in _CACHE:
        booster, matrix = _trained(categorical=True)
        import pandas as pd

        rng = np.random.default_rng(4)
        frame = pd.DataFrame(rng.normal(size=(20, 4)).astype(np.float32), columns=list("abcd"))
        frame["c"] = pd.Categorical(rng.integers(0, 5, 20), categories=range(5))
        _CACHE["ubj"] = (bytes(booster.save_raw("ubj")), frame)
    return _CACHE["ubj"]


def test_unknown_loader_options_are_refused():
    data = (DATA / "x176-binary-logistic.ubj").read_bytes()
    with pytest.raises(ArtifactError, match="unknown option.*member"):
        xgb_loader.load(data, signature="x")


def test_the_former_module_still_answers():
    """inspection and the CLI imported loaders.xgboost_legacy; it re-exports the core reader."""
    data = (DATA / "x090-binary-logistic.model").read_bytes()
    assert shim.facts(data) == legacy.facts(data) and shim.detect_era(data) == "legacy-binary"
    booster, info = shim.load_booster(data)
    assert info["converted"] and booster.num_features() == info["num_feature"]


# ---- the checks read a current UBJSON file's trees in blocks, gathering 16 values at a time

def _big_ubj() -> bytes:
    if "big" not in _CACHE:
        rng = np.random.default_rng(8)
        rows = rng.normal(size=(3000, 6)).astype(np.float32)
        labels = np.sin(rows[:, 0] * 3) + rows[:, 1] * rows[:, 2] + 0.3 * rng.normal(size=len(rows))
        booster = xgb.train({"max_depth": 8, "tree_method": "hist", "eta": 0.1, "seed": 1},
                            xgb.DMatrix(rows, label=labels), 160)
        _CACHE["big"] = bytes(booster.save_raw("ubj"))
    return _CACHE["big"]


def _block_columns_equal_the_forest(forest) -> int:
    blocks = list(forest.blocks())
    assert [b.first for b in blocks] == [0] + [b.last for b in blocks[:-1]] and blocks[-1].last == forest.num_trees
    for block in blocks:
        slots = np.concatenate([np.arange(s, s + n) for s, n in zip(block.starts, block.sizes)])
        begin = int(forest.starts[block.first])
        for name in ("left_children", "right_children", "parents", "split_indices", "default_left", "split_type"):
            whole = forest.column(name)[begin:begin + int(block.sizes.sum())]
            np.testing.assert_array_equal(block.column(name)[slots], whole, err_msg=name)
    return len(blocks)


def test_a_model_checked_in_several_blocks_reads_every_tree():
    raw = _big_ubj()
    forest = legacy.read_model(raw).forest
    assert _block_columns_equal_the_forest(forest) >= 2
    from_json = legacy.read_model(xgb_loader.load(raw).model.save_raw("json")).forest
    for name in legacy._NODE_COLUMNS:
        np.testing.assert_array_equal(forest.column(name), from_json.column(name), err_msg=name)


@pytest.mark.parametrize("key, value, message", [(b"left_children", 99999, "child index"),
                                                 (b"parents", -7, "parent index"),
                                                 (b"split_indices", 40, "feature 40")])
def test_damage_in_a_later_block_names_its_tree(key, value, message):
    raw = _big_ubj()
    forest = legacy.read_model(raw).forest
    tree = list(forest.blocks())[-1].first + 1
    with pytest.raises(CorruptArtifact, match=f"tree {tree} .*{message}"):
        xgb_loader.load(_damaged(raw, [(tree, key, 0 if key != b"parents" else 1, value)]))


def test_trees_at_the_very_end_of_the_bytes_are_read_as_well():
    """A block's values are gathered in runs that may reach past a tree's array: when an array ends the
    bytes (here ``right_children``, put last in every tree, in a trees array that ends the file) the runs
    are read from a padded copy. The keys may come in any order in a UBJSON object."""
    forest = legacy.read_model(_big_ubj()).forest
    trees = []
    for i in range(forest.num_trees):
        tree = legacy._tree_document(i, forest.tree(i))
        tree["right_children"] = tree.pop("right_children")
        trees.append(tree)
    data = bytes(legacy._ubj_dumps(trees))
    assert data.endswith(forest.tree(forest.num_trees - 1).right_children.astype(">i4").tobytes() + b"}")
    walked = legacy._scan_ubj_trees(data, 0, len(data))
    assert walked is not None and walked.end == len(data)
    read = legacy._forest_from_ubj(walked)
    assert _block_columns_equal_the_forest(read) >= 2
    for name in legacy._NODE_COLUMNS:
        np.testing.assert_array_equal(read.column(name), forest.column(name), err_msg=name)
    legacy._check_trees(read, 6)


def test_trees_grown_leaf_by_leaf_load_and_predict_as_xgboost():
    """Loss-guided growth numbers the children in the order splits were made, not node by node."""
    rng = np.random.default_rng(9)
    rows = rng.normal(size=(2000, 5)).astype(np.float32)
    labels = rows[:, 0] * rows[:, 1] + np.sin(rows[:, 2] * 2)
    booster = xgb.train({"tree_method": "hist", "grow_policy": "lossguide", "max_leaves": 24, "max_depth": 0},
                        xgb.DMatrix(rows, label=labels), 20)
    forest = legacy.read_model(bytes(booster.save_raw("ubj"))).forest
    left = forest.column("left_children")
    internal = np.flatnonzero(left != -1)
    assert (np.diff(left[internal]) < 0).any()  # children not in node order
    loaded = xgb_loader.load(bytes(booster.save_raw("ubj")))
    matrix = xgb.DMatrix(rows[:50])
    np.testing.assert_array_equal(loaded.model.predict(matrix), booster.predict(matrix))
